"""The scheduled-procedure-step state table."""

import pytest

from ris_app.errors import Conflict, Invalid
from ris_app.scheduling.states import (
    FINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    SPSStatus,
    next_status,
)


def test_every_state_is_reachable_from_scheduled():
    reached = {SPSStatus.SCHEDULED}
    frontier = [SPSStatus.SCHEDULED]
    while frontier:
        current = frontier.pop()
        for sources, target in TRANSITIONS.values():
            if current in sources and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(SPSStatus)


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_have_no_way_out(final):
    for action in TRANSITIONS:
        with pytest.raises(IllegalTransition):
            next_status(final, action)


def test_happy_path():
    s = SPSStatus.SCHEDULED
    for action, expected in [("arrive", "ARRIVED"), ("start", "STARTED"), ("complete", "COMPLETED")]:
        s = next_status(s, action)
        assert s == expected


def test_unknown_action_is_invalid_and_an_illegal_move_a_conflict():
    with pytest.raises(Invalid) as err:
        next_status(SPSStatus.SCHEDULED, "teleport")
    assert err.value.field == "action"
    with pytest.raises(Conflict) as err:
        next_status(SPSStatus.COMPLETED, "start")
    assert err.value.code == "illegal_transition"
