"""The layer tree: the model's module hierarchy in forward order, with trouble badges."""

from __future__ import annotations

from collections import defaultdict

from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import style
from bnviz.app.session import Session

PATH_ROLE = QtCore.Qt.ItemDataRole.UserRole
# Finding kinds grouped into the badges a tree row shows, worst first.
BADGES = (
    ("NaN", ("nonfinite",), style.OKABE_ITO["vermillion"]),
    ("dead", ("dead",), style.OKABE_ITO["orange"]),
    ("sat", ("saturated",), style.OKABE_ITO["orange"]),
    ("γβ→zone", ("gamma_beta_zone",), style.OKABE_ITO["orange"]),
    ("γ→0", ("gamma_collapse",), style.OKABE_ITO["purple"]),
    ("eval≠train", ("train_eval",), style.OKABE_ITO["purple"]),
    ("drift", ("drift",), style.OKABE_ITO["blue"]),
    ("tiny batch", ("small_batch",), style.OKABE_ITO["blue"]),
    ("ranks≠", ("ranks_disagree",), style.OKABE_ITO["purple"]),
)


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
        self.itemSelectionChanged.connect(self._selected)
        session.runs_changed.connect(self.populate)
        session.state.changed.connect(self._state_changed)

    def populate(self) -> None:
        self.blockSignals(True)
        self.clear()
        self._leaves = {}
        slot = self.session.primary
        if slot is not None:
            nodes: dict[tuple, QtWidgets.QTreeWidgetItem] = {}
            for li in slot.run.layers:
                parts = li.path.split(".")
                parent = self.invisibleRootItem()
                for k in range(1, len(parts)):
                    key = tuple(parts[:k])
                    if key not in nodes:
                        nodes[key] = QtWidgets.QTreeWidgetItem(parent, [parts[k - 1]])
                        nodes[key].setFlags(QtCore.Qt.ItemFlag.ItemIsEnabled)
                    parent = nodes[key]
                leaf = QtWidgets.QTreeWidgetItem(parent, [parts[-1], str(li.num_features), li.activation or ""])
                leaf.setData(0, PATH_ROLE, li.path)
                leaf.setToolTip(
                    0,
                    style.tooltip(
                        f"{li.path}\n{li.kind}, {li.num_features} channels, "
                        f"followed by {li.activation} ({li.activation_source})"
                    ),
                )
                self._leaves[li.path] = leaf
            self.expandAll()
            for c in range(3):
                self.resizeColumnToContents(c)
        self.blockSignals(False)
        self._show_layer()

    def set_findings(self, findings) -> None:
        by_layer = defaultdict(list)
        for f in findings:
            by_layer[f.layer].append(f)
        for path, leaf in self._leaves.items():
            fs = by_layer.get(path, [])
            kinds = {f.kind for f in fs}
            tags = [(name, colour) for name, ks, colour in BADGES if kinds & set(ks)]
            leaf.setText(3, " ".join(name for name, _ in tags))
            if tags:
                leaf.setForeground(3, QtGui.QBrush(QtGui.QColor(tags[0][1])))
                font = leaf.font(3)
                font.setBold(True)
                leaf.setFont(3, font)
            leaf.setToolTip(3, style.tooltip("\n".join(f.message for f in fs) or "no findings"))
        self.resizeColumnToContents(3)

    def _selected(self) -> None:
        items = self.selectedItems()
        if items and items[0].data(0, PATH_ROLE):
            self.session.state.update(layer=items[0].data(0, PATH_ROLE))

    def _state_changed(self, names) -> None:
        if "layer" in names:
            self._show_layer()

    def _show_layer(self) -> None:
        leaf = self._leaves.get(self.session.state.layer or "")
        if leaf is not None and not leaf.isSelected():
            self.blockSignals(True)
            self.setCurrentItem(leaf)
            self.blockSignals(False)
            self.scrollToItem(leaf)
