"""Start-up objects leave the collector's reach; a session's objects never do."""

import gc
import weakref

import dspex_bridge as bridge


def test_freeze_moves_start_up_objects_out_of_full_collections(monkeypatch):
    # As at start-up: no session yet (other tests' sessions may still await collection).
    monkeypatch.setattr(bridge, "LIVE_SESSIONS", weakref.WeakSet())
    gc.unfreeze()
    before = len(gc.get_objects())
    bridge._freeze()
    assert gc.get_freeze_count() >= before > 1000
    assert len(gc.get_objects()) < before / 10
    gc.unfreeze()


def test_freeze_does_nothing_while_a_session_lives(open_session):
    gc.unfreeze()
    session = open_session()
    assert session in bridge.LIVE_SESSIONS
    bridge._freeze()
    assert gc.get_freeze_count() == 0
    gc.unfreeze()
