"""A worker process picks up settings saved in the admin (the data folder's sendwell.env) on its scan."""

from __future__ import annotations

from sendwell.runtime import Runtime
from sendwell.settings_edit import update_settings
from sendwell.worker.queue import Queue
from tests.conftest import make_settings


def test_the_scan_swaps_in_settings_saved_by_another_process(tmp_path) -> None:
    data = tmp_path / "data"
    runtime = Runtime(make_settings(data, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    queue = Queue(runtime)
    try:
        before = runtime.settings
        assert queue.reload_settings() == []  # the file as it is now is remembered
        # The web process saves a change: it writes sendwell.env in the shared data folder.
        update_settings(make_settings(data), {"company_name": "Ningbo Bright Lighting Group"})
        assert queue.reload_settings() == ["company_name"]
        assert runtime.settings is not before
        assert runtime.settings.company_name == "Ningbo Bright Lighting Group"
        assert before.company_name != "Ningbo Bright Lighting Group"  # the old object is never changed
        assert queue.reload_settings() == []  # nothing new in the file
    finally:
        queue.huey.flush()
        runtime.dispose()
