"""The layer tree: the model's module hierarchy in forward order, with trouble badges.

With several runs open the tree lists every run's layers matched by name (the reference run's
in its forward order, then those only other runs have), and a badge shows the worst finding of
that layer over the visible runs; its tooltip says which run found what."""

from __future__ import annotations

from collections import defaultdict

from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import style
from bnviz.app.session import Session, layer_matches

PATH_ROLE = QtCore.Qt.ItemDataRole.UserRole  # a layer row's layer path
GROUP_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1  # a group row's module path
# Finding kinds grouped into the badges a tree row shows, in this order.
BADGES = (
    ("NaN", ("nonfinite",)),
    ("dead", ("dead",)),
    ("sat", ("saturated",)),
    ("γβ→zone", ("gamma_beta_zone",)),
    ("γ→0", ("gamma_collapse",)),
    ("eval≠train", ("train_eval",)),
    ("drift", ("drift",)),
    ("tiny batch", ("small_batch",)),
    ("ranks≠", ("ranks_disagree",)),
)


def badge_text(findings) -> str:
    """The badges of a row's findings, most severe first."""
    names = []
    for f in sorted(findings, key=lambda f: -f.severity):
        name = next((n for n, kinds in BADGES if f.kind in kinds), f.kind)
        if name not in names:
            names.append(name)
    return " ".join(names)


class LayerTree(QtWidgets.QTreeWidget):
    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.setColumnCount(4)
        self.setHeaderLabels(["Layer", "Ch", "Act", "Trouble"])
        self.setIndentation(14)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setToolTip("BatchNorm layers in forward order. Trouble badges come from the findings.")
        self._leaves: dict[str, QtWidgets.QTreeWidgetItem] = {}
        self._groups: list[QtWidgets.QTreeWidgetItem] = []
        self.itemSelectionChanged.connect(self._selected)
        # the filter box the window shows above the tree (Ctrl+F), bound to state.layer_filter
        self.filter_box = QtWidgets.QLineEdit()
        self.filter_box.setPlaceholderText("Filter layers (text or glob, e.g. layer3.*)  Ctrl+F")
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.setToolTip(
            "Show only the layers whose path contains this text or matches this glob; "
            "[ and ] step through the layers shown"
        )
        self.filter_box.textChanged.connect(lambda text: self.session.state.update(layer_filter=text))
        session.runs_changed.connect(self.populate)
        session.findings_changed.connect(self.show_findings)
        session.state.changed.connect(self._state_changed)

    def populate(self) -> None:
        self.blockSignals(True)
        self.clear()
        self._leaves, self._groups = {}, []
        if self.session.slots:
            nodes: dict[tuple, QtWidgets.QTreeWidgetItem] = {}
            for li in self.session.layers():
                parts = li.path.split(".")
                parent = self.invisibleRootItem()
                for k in range(1, len(parts)):
                    key = tuple(parts[:k])
                    if key not in nodes:
                        nodes[key] = QtWidgets.QTreeWidgetItem(parent, [parts[k - 1]])
                        nodes[key].setFlags(QtCore.Qt.ItemFlag.ItemIsEnabled)
                        nodes[key].setData(0, GROUP_ROLE, ".".join(key))
                        self._groups.append(nodes[key])
                    parent = nodes[key]
                leaf = QtWidgets.QTreeWidgetItem(parent, [parts[-1], str(li.num_features), li.activation or ""])
                leaf.setData(0, PATH_ROLE, li.path)
                lacking = [s.label for s in self.session.slots if s.layer(li.path) is None]
                leaf.setToolTip(
                    0,
                    style.tooltip(
                        f"{li.path}\n{li.kind}, {li.num_features} channels, "
                        f"followed by {li.activation} ({li.activation_source})"
                        + (f"\nNot in run {', '.join(lacking)}" if lacking else "")
                    ),
                )
                self._leaves[li.path] = leaf
            self.expandAll()
            for c in range(3):
                self.resizeColumnToContents(c)
        self.blockSignals(False)
        self.apply_filter()
        self._show_layer()
        self.show_findings()

    def show_findings(self) -> None:
        """The badges of the visible runs' findings (``Session.visible_findings``)."""
        self.set_findings([(s.label, f) for s, f in self.session.visible_findings()])

    def set_findings(self, rows) -> None:
        """Badges on each layer from ``rows`` of (run letter, finding), coloured by the worst
        finding's severity over those runs; a group row shows the badges of every layer under
        it, so collapsed groups still say where trouble is."""
        by_layer = defaultdict(list)
        tips = defaultdict(list)
        for run, f in rows:
            by_layer[f.layer].append(f)
            tips[f.layer].append(f"{run}: {f.message}" if run else f.message)
        for path, leaf in self._leaves.items():
            self._badge(leaf, by_layer.get(path, []), "\n".join(tips.get(path, [])))
        for group in self._groups:
            under = [f for p, fs in by_layer.items() if p.startswith(group.data(0, GROUP_ROLE) + ".") for f in fs]
            layers = sorted({f.layer for f in under})
            self._badge(
                group, under, f"{len(layers)} layer(s) below with findings: " + ", ".join(layers) if layers else ""
            )
        self.resizeColumnToContents(3)

    @staticmethod
    def _badge(item: QtWidgets.QTreeWidgetItem, findings, tip: str) -> None:
        item.setText(3, badge_text(findings))
        font = item.font(3)
        font.setBold(bool(findings))
        item.setFont(3, font)
        if findings:
            item.setForeground(3, QtGui.QBrush(QtGui.QColor(style.severity_colour(max(f.severity for f in findings)))))
        item.setToolTip(3, style.tooltip(tip or "no findings"))

    def _selected(self) -> None:
        items = self.selectedItems()
        if items and items[0].data(0, PATH_ROLE):
            self.session.state.update(layer=items[0].data(0, PATH_ROLE))

    def _state_changed(self, names) -> None:
        if "layer" in names:
            self._show_layer()
        if "layer_filter" in names:
            self.apply_filter()
        if "hidden_runs" in names:
            self.show_findings()

    def apply_filter(self) -> None:
        """Hide the layers the filter does not match, and groups left empty."""
        pattern = self.session.state.layer_filter
        if self.filter_box.text() != pattern:
            with QtCore.QSignalBlocker(self.filter_box):
                self.filter_box.setText(pattern)
        for path, leaf in self._leaves.items():
            leaf.setHidden(not layer_matches(path, pattern))
        for group in reversed(self._groups):  # inner groups first
            kids = [group.child(i) for i in range(group.childCount())]
            group.setHidden(all(k is None or k.isHidden() for k in kids))

    def _show_layer(self) -> None:
        leaf = self._leaves.get(self.session.state.layer or "")
        if leaf is not None and not leaf.isSelected():
            self.blockSignals(True)
            self.setCurrentItem(leaf)
            self.blockSignals(False)
            self.scrollToItem(leaf)
