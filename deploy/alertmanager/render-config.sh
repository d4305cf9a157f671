#!/bin/sh
# Start Alertmanager with the receiver URLs taken from the environment.
#
# alertmanager.yml carries placeholder URLs (Alertmanager 0.25+ has no env
# expansion and 0.25 no url_file for webhooks); each one set in the environment
# replaces its placeholder in a private copy, so the URLs never enter the repository.
set -eu

template=${CALLPULSE_ALERTMANAGER_TEMPLATE:-/etc/alertmanager/alertmanager.yml}
rendered=${CALLPULSE_ALERTMANAGER_CONFIG:-/tmp/alertmanager.yml}
binary=${CALLPULSE_ALERTMANAGER_BIN:-/bin/alertmanager}

escape() {
    printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'
}

substitute() {
    placeholder=$1
    value=$2
    if [ -n "$value" ]; then
        sed -i "s|$placeholder|$(escape "$value")|" "$rendered"
    fi
}

cp "$template" "$rendered"
substitute 'http://callpulse-alert-critical.invalid/' "${CALLPULSE_ALERT_WEBHOOK_CRITICAL_URL:-}"
substitute 'http://callpulse-alert-warning.invalid/' "${CALLPULSE_ALERT_WEBHOOK_WARNING_URL:-}"
substitute 'http://callpulse-alert-watchdog.invalid/' "${CALLPULSE_ALERT_WEBHOOK_WATCHDOG_URL:-}"

exec "$binary" --config.file="$rendered" "$@"
