"""Cross-package: scripts/env.sh keeps a user's own ROS settings in their shell, and isolates
(loopback discovery, a fresh domain, the shared-memory profile) only when asked to: the
Makefile, scripts/test.sh and scripts/demo.sh ask, so tests, the demo and CI stay isolated."""
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DDS = ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTDDS_DEFAULT_PROFILES_FILE')


def _sourced_env(options: str = '', **exported) -> dict:
    """The environment after `. scripts/env.sh` in a bash started with a clean environment plus
    `exported` (what a user has in their shell) and shell `options` (e.g. test.sh's)."""
    base = {'PATH': '/usr/local/bin:/usr/bin:/bin', 'HOME': os.environ.get('HOME', '/tmp'), **exported}
    out = subprocess.run(['bash', '-c', f'{options}. scripts/env.sh && env -0'], cwd=ROOT, env=base,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return dict(item.split('=', 1) for item in out.split('\0') if '=' in item)


def test_users_shell_keeps_their_domain_and_is_not_forced_onto_localhost_or_shm():
    env = _sourced_env(ROS_DOMAIN_ID='0')
    assert env['ROS_DOMAIN_ID'] == '0'                 # the camera on domain 0 stays visible
    assert 'ROS_AUTOMATIC_DISCOVERY_RANGE' not in env  # ROS's default: remote RViz, containers
    assert 'FASTDDS_DEFAULT_PROFILES_FILE' not in env  # default transports, not SHM only
    assert env['RAM_ROS_ROOT'] == str(ROOT)             # the workspace itself is set up


def test_users_own_discovery_settings_are_not_overridden(tmp_path):
    profile = tmp_path / 'my_profile.xml'
    env = _sourced_env(ROS_DOMAIN_ID='42', ROS_AUTOMATIC_DISCOVERY_RANGE='SUBNET',
                       FASTDDS_DEFAULT_PROFILES_FILE=str(profile))
    assert {k: env[k] for k in DDS} == {'ROS_DOMAIN_ID': '42', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET',
                                        'FASTDDS_DEFAULT_PROFILES_FILE': str(profile)}


def test_isolation_switch_gives_loopback_a_fresh_domain_and_the_shm_profile():
    # even over what the shell exported: tests and the demo must never reach a robot's domain;
    # sourced under test.sh's and demo.sh's `set -euo pipefail`
    runs = [_sourced_env('set -euo pipefail; ', RAM_ROS_ISOLATE='1', ROS_DOMAIN_ID='0',
                         ROS_AUTOMATIC_DISCOVERY_RANGE='SUBNET') for _ in range(5)]
    for env in runs:
        assert 1 <= int(env['ROS_DOMAIN_ID']) <= 101
        assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
        assert env['FASTDDS_DEFAULT_PROFILES_FILE'] == str(ROOT / 'config' / 'fastdds_shm.xml')
    assert len({env['ROS_DOMAIN_ID'] for env in runs}) > 1     # a fresh one per run


def test_tests_demo_and_make_targets_ask_for_isolation():
    """Every entry point that starts ROS processes sources env.sh with the switch on, so it is
    isolated whatever shell it is started from (`make` recipes as make would run them)."""
    for script in ('scripts/test.sh', 'scripts/demo.sh'):
        text = (ROOT / script).read_text()
        assert re.search(r'export RAM_ROS_ISOLATE=1\n(.*\n)*\. .*scripts/env\.sh', text), script
    recipes = subprocess.run(['make', '-n', 'test', 'demo', 'bench', 'eval'], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, check=True).stdout.splitlines()
    sourcing = [line for line in recipes if 'scripts/env.sh' in line]
    assert len(sourcing) == 4
    assert all(re.search(r'export RAM_ROS_ISOLATE=1 && \. scripts/env\.sh', line) for line in sourcing), sourcing
