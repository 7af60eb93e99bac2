"""warm(): importing the LM client stack in the background must never hand an LM call made
meanwhile a half-imported litellm ("partially initialized module 'litellm' has no
attribute 'completion'"). Each case runs in a fresh interpreter, where litellm is not
imported yet."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

RACE = r"""
import sys, threading, time
sys.path.insert(0, sys.argv[1])
import dspex_bridge
from dspy.clients._litellm import get_litellm

warming = threading.Thread(target=dspex_bridge.warm)
warming.start()
# An LM call's first step, while litellm is half imported by the warm-up.
while "litellm" not in sys.modules:
    time.sleep(0.0005)
litellm = get_litellm(feature="an LM call during the warm-up")
print("completion" if callable(litellm.completion) else "no completion")
warming.join()
"""


def test_an_lm_call_during_the_warm_up_waits_for_the_whole_import():
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    done = subprocess.run(
        [sys.executable, "-c", RACE, os.path.dirname(HERE)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "completion"
