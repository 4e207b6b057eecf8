"""A worker process picks up settings saved in the admin (the database) on its scan."""

from __future__ import annotations

from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.settings_edit import update_settings
from sendwell.worker.queue import Queue


def test_the_scan_swaps_in_settings_saved_by_another_process(settings, tmp_path) -> None:
    runtime = Runtime(settings)
    web = Runtime(settings.replace(data_dir=tmp_path / "web"))  # another process, another data folder
    queue = Queue(runtime)
    try:
        before = runtime.settings
        assert queue.reload_settings() == []  # nothing saved yet
        # The web process saves a change: it stores it in the database.
        with transaction(web.factory) as session:
            update_settings(web.settings, {"company_name": "Ningbo Bright Lighting Group"}, session)
        assert queue.reload_settings() == ["company_name"]
        assert runtime.settings is not before
        assert runtime.settings.company_name == "Ningbo Bright Lighting Group"
        assert before.company_name != "Ningbo Bright Lighting Group"  # the old object is never changed
        assert queue.reload_settings() == []  # nothing new in the database
    finally:
        queue.huey.flush()
        runtime.dispose()
        web.dispose()
