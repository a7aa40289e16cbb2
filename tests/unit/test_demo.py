import clearset


def test_demo_runs_and_reports(tmp_path):
    result = clearset.demo(tmp_path / "demo")
    assert result.report.is_file()
    text = result.summary()
    assert "linear probe" in text and str(result.report.resolve()) in text
    again = clearset.demo(tmp_path / "demo")  # every step is a cache hit the second time
    assert "img/s" not in again.headline["embedding"]
