"""bnviz report: one self-contained HTML page, pictures embedded, names from the file escaped."""

import base64
import struct
from html.parser import HTMLParser

import pytest

from bnviz import cli
from bnviz.analysis.findings import findings
from bnviz.report import write_report
from bnviz.store import open_run
from bnviz.store.synthetic import write_synthetic_run

HOSTILE = [
    '<img src="https://evil.example/x.png" onerror="alert(1)">',
    "a&b",
    "layer.2",
    '"><script src="https://evil.example/x.js"></script>',
]


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    run = folder / "sick.h5"
    write_synthetic_run(
        run,
        layers=4,
        channels=8,
        steps=150,
        pathologies=("dead_relu", "drift"),
        layer_names=HOSTILE,
        meta={"model_class": "<i>Net</i>"},
    )
    calls = []
    out = write_report(run, folder / "report.html", progress=lambda *a: calls.append(a))
    page = Page()
    page.feed(out.read_text(encoding="utf-8"))
    with open_run(run) as r:
        found = findings(r)
    return out, page, calls, found


def png_size(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_page_refers_to_nothing_outside_itself(report):
    _, page, _, _ = report
    tags = [t for t, _ in page.tags]
    assert not {"script", "link", "iframe", "object", "embed"} & set(tags)
    for tag, attrs in page.tags:
        assert set(attrs) <= {"href", "src", "id", "class", "alt", "loading", "charset", "name", "content", "lang"}, (
            tag,
            attrs,
        )
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs
        if "src" in attrs:
            assert tag == "img" and attrs["src"].startswith("data:image/png;base64,"), attrs


def test_every_finding_every_layer_and_the_overview_has_a_picture(report):
    _, page, _, found = report
    images = [a for t, a in page.tags if t == "img"]
    assert found and len(images) == len(found) + 1 + len(HOSTILE)
    for a in images:
        width, height = png_size(base64.b64decode(a["src"].split(",", 1)[1]))
        assert width >= 600 and height >= 400
    ids = {a["id"] for t, a in page.tags if "id" in a}
    assert all(a["href"][1:] in ids for t, a in page.tags if "href" in a)  # links land somewhere


def test_names_from_the_file_are_text_not_markup(report):
    _, page, _, found = report
    text = "".join(page.text)
    for name in HOSTILE + ["<i>Net</i>"]:
        assert name in text
    assert all(f.message in text for f in found)
    assert not [t for t, _ in page.tags if t == "i"]


def test_readable_on_a_phone_and_progress_reported(report):
    out, page, calls, _ = report
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in page.tags
    assert "@media" in out.read_text(encoding="utf-8")
    totals = {total for _, total, _ in calls}
    assert len(totals) == 1 and [done for done, _, _ in calls] == list(range(totals.pop() + 1))


def test_the_command_writes_the_page_and_rejects_bad_output(report, tmp_path, capsys):
    run = report[0].parent / "sick.h5"
    assert cli.main(["report", str(run), "-o", str(tmp_path / "r.html"), "--threshold", "drift=5"]) == 0
    assert "wrote" in capsys.readouterr().err and (tmp_path / "r.html").stat().st_size > 10_000
    assert cli.main(["report", str(run), "-o", str(tmp_path / "r.pdf")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bnviz report: error: ") and ".html" in err and err.count("\n") == 1
    assert cli.main(["report", str(tmp_path / "none.h5"), "-o", str(tmp_path / "x.html")]) == 1
    assert "no such file" in capsys.readouterr().err and not (tmp_path / "x.html").exists()
