import clearset


def test_demo_runs_and_reports(demo_result):
    result = demo_result
    assert result.report.is_file()
    text = result.summary()
    assert "linear probe" in text and str(result.report.resolve()) in text
    assert "dm+fyi" in result.headline["distillation"]
    assert (result.report.parent / "assets" / "distilled").is_dir()  # the synthetic images are in the report
    again = clearset.demo(result.report.parent.parent)  # every step is a cache hit the second time
    assert "img/s" not in again.headline["embedding"]
