"""SQLite writers in different processes take turns (db/session.py's flock gate).

A worker's deliverers hold the write lock for most of the time (each SMTP hand-off is one
transaction); a write from another process must still get in after a few of them, not wait
until the campaign is over or the busy timeout runs out.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sqlalchemy import text

from sendwell.db.session import make_engine

HOG_TRANSACTIONS = 200  # 4 threads × 50, each holding the lock for 10 ms

HOG = textwrap.dedent("""
    import sys, threading, time
    from sqlalchemy import text
    from sendwell.db.session import make_engine
    engine = make_engine(sys.argv[1])
    def hog():
        for _ in range(50):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO ticks (who) VALUES ('hog')"))
                time.sleep(0.01)  # the SMTP exchange of a hand-off
    threads = [threading.Thread(target=hog) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
""")


def test_a_writer_in_another_process_gets_in_between_a_busy_process_s_transactions(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE ticks (id INTEGER PRIMARY KEY, who TEXT, seen INTEGER)"))
    hog = subprocess.Popen([sys.executable, "-c", HOG, url])
    try:
        # Wait (reading only) until the other process is writing back to back.
        while True:
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM ticks")).scalar_one() >= 5:
                    break
            assert hog.poll() is None, "the busy process ended before the test could write"
        with engine.begin() as conn:
            seen = conn.execute(text("SELECT count(*) FROM ticks WHERE who = 'hog'")).scalar_one()
            conn.execute(text("INSERT INTO ticks (who, seen) VALUES ('outsider', :n)"), {"n": seen})
    finally:
        assert hog.wait(timeout=120) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ticks WHERE who = 'hog'")).scalar_one() == HOG_TRANSACTIONS
    # Got in long before the busy process was done (without the gate it waited for nearly all
    # 200: SQLite's busy handler polls and the lock is free only between two transactions).
    assert seen < HOG_TRANSACTIONS // 2, f"the outsider waited for {seen} of {HOG_TRANSACTIONS} transactions"
