"""``make bench``: run the seven benchmarks in one go, then write docs/performance.md and
docs/performance.png. Raw results also go to bench/results/results.json."""

from __future__ import annotations

import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import identification
import inprocess
import report
import scaleout
import session_size
from common import RESULTS

PACKAGES = (
    "flask-flows",
    "flask",
    "werkzeug",
    "flask-sqlalchemy",
    "sqlalchemy",
    "flask-wtf",
    "argon2-cffi",
    "flask-security-too",
    "libpass",
    "psycopg",
    "gunicorn",
    "matplotlib",
)


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import os

    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: version(name) for name in PACKAGES},
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main() -> None:
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="flows-bench-") as tmp:
        workdir = Path(tmp)
        steps = [
            ("overhead", lambda: inprocess.stage_overhead(workdir, rounds=7, requests=200)),
            (
                "login",
                lambda: inprocess.whole_login(
                    workdir,
                    rounds={"cheap": 7, "production": 5},
                    logins={"cheap": 20, "production": 4},
                ),
            ),
            ("ceiling", lambda: inprocess.ceiling(results["login"], rounds=5, verifies=10)),
            ("session", lambda: session_size.session_sizes(workdir)),
            ("queries", lambda: inprocess.queries_per_request(workdir, (1, 100, 1000))),
            ("scaleout", lambda: scaleout.scale_out(workdir, rounds=3, clients=3, seconds=8)),
            (
                "identification",
                lambda: identification.identification_cost(workdir, rounds=5, requests=100),
            ),
        ]
        for name, step in steps:
            began = time.monotonic()
            results[name] = step()
            print(f"bench: {name} done in {time.monotonic() - began:.0f} s", flush=True)
    results["duration_seconds"] = time.monotonic() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2))
    report.write(results)
    seconds = results["duration_seconds"]
    print(f"bench: wrote docs/performance.md and docs/performance.png in {seconds:.0f} s")


if __name__ == "__main__":
    main()
