#!/usr/bin/env bash
# The test command behind `make test`: colcon test of every package (unit + live-DDS tests),
# then the cross-package tests in test/. Fails if any test fails; prints pytest's own summary lines.
set -uo pipefail
cd "$(dirname "$0")/.."
# Tests always run isolated (loopback discovery, a fresh ROS_DOMAIN_ID, the SHM profile),
# whatever shell starts them.
export RAM_ROS_ISOLATE=1
. scripts/env.sh
echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$ROS_AUTOMATIC_DISCOVERY_RANGE"
status=0
colcon test --return-code-on-test-failure --event-handlers console_direct+ \
  --pytest-args -p no:cacheprovider -q -ra "$@" || status=1
colcon test-result --verbose >/dev/null || status=1
echo "[test] cross-package tests (test/)"
python -m pytest -p no:cacheprovider -q -ra test "$@"
rc=$?
[ $rc -ne 0 ] && status=1
[ $status -eq 0 ] && echo "[test] all tests passed" || echo "[test] FAILED (see above; colcon test-result --verbose)"
exit $status
