"""Shared test plumbing: timings worth reading in the CI log."""

TIMINGS: list[tuple[str, float]] = []


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("airnode timings (seconds)")
        for what, seconds in TIMINGS:
            terminalreporter.write_line(f"{what:<60} {seconds:8.1f}")
