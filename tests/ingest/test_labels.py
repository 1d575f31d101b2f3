"""Labels CSV: names, integers, header or not, and the errors that name the problem."""

from __future__ import annotations

import pytest

from spacessl.ingest.labels import LabelsError, read_labels_csv


def _csv(tmp_path, text: str):
    p = tmp_path / "labels.csv"
    p.write_text(text)
    return str(p)


def test_class_names_become_sorted_label_names(tmp_path):
    t = read_labels_csv(_csv(tmp_path, "filename,label\nnight1/a.png,moon\n./night1/b.png,arc\nc.png,\n"
                                       "# comment\n\nd.png,moon\n"))
    assert t.label_names == ["arc", "moon"]
    assert t.lookup("night1/a.png") == 1 and t.lookup("night1/b.png") == 0
    assert t.lookup("c.png") == -1                  # empty label = unlabelled
    assert t.lookup("sub/d.png") == 1               # bare file name in the CSV
    assert t.lookup("other.png") == -1              # not listed
    assert t.unused() == []


def test_integers_without_header_and_columns_in_any_order(tmp_path):
    t = read_labels_csv(_csv(tmp_path, "a.png,3\nb.png,0\nc.png,-1\n"))
    assert t.label_names is None and [t.lookup(n) for n in "abc"] == [-1] * 3
    assert [t.lookup(f"{n}.png") for n in "abc"] == [3, 0, -1]
    t = read_labels_csv(_csv(tmp_path, "label,score,filename\n2,0.5,x.png\n"))
    assert t.lookup("x.png") == 2 and t.unused() == []
    t = read_labels_csv(_csv(tmp_path, "filename,label\nx.png,1\ny.png,2\n"))
    t.lookup("x.png")
    assert t.unused() == ["y.png"]


@pytest.mark.parametrize("text,needle", [
    ("filename,label\na.png,1\nb.png,arc\n", "mixes integer labels and class names"),
    ("filename,label\na.png,arc\na.png,moon\n", "labelled both"),
    ("filename,label\na.png\n", "line 2"),
    ("filename,label\na.png,40000\n", "outside"),
    ("", "no rows"),
])
def test_errors_name_the_problem(tmp_path, text, needle):
    path = _csv(tmp_path, text)
    with pytest.raises(LabelsError, match=needle) as info:
        read_labels_csv(path)
    assert "labels.csv" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(LabelsError, match="cannot read"):
        read_labels_csv(str(tmp_path / "nope.csv"))
