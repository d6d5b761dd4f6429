#!/bin/sh
# The nightly job of docs/operating.md: run every export, keep the JSON summary for whatever
# reads it next, and say what the exit code means. From cron, with DATABASE_URL set there:
#   15 2 * * *  cd /srv/rivet && sh nightly.sh >> nightly.log 2>&1
cd "$(dirname "$0")" || exit 2
rivet run -c rivet.toml --summary-output last-run.json
code=$?
case $code in
    0) echo "nightly: every export certified" ;;
    1) echo "nightly: an export failed; the others ran (its error and hint are above)" ;;
    7) echo "nightly: an export was not certified (a quality gate or schema drift)" ;;
    130) echo "nightly: stopped by a signal; run it again" ;;
    *) echo "nightly: nothing ran (exit $code: config, plan or plugin); fix it first" ;;
esac
exit "$code"
