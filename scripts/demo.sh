#!/usr/bin/env bash
# Set up (scripts/setup.sh), then open the demo notebooks in JupyterLab.
#
#   bash scripts/demo.sh                  JupyterLab on notebooks/, on 127.0.0.1; prints the URL
#   bash scripts/demo.sh --ip 0.0.0.0     listen elsewhere (e.g. in a container); keep the token secret
#   bash scripts/demo.sh --port 9999      another port (default: 8888, or a free one if taken)
#   bash scripts/demo.sh --headless       no browser: run notebooks/01-quickstart.ipynb with nbclient
#                                         and print the final statuses of its runs
#
# Headless is also chosen by OVERSEER_NB_HEADLESS=1, and when CI=true. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

ip=127.0.0.1
port=""
headless="${OVERSEER_NB_HEADLESS:-0}"
[ "${CI:-}" = "true" ] && headless=1
while [ $# -gt 0 ]; do
  case "$1" in
    --headless) headless=1 ;;
    --ip) ip="${2:?--ip needs an address, e.g. --ip 0.0.0.0}"; shift ;;
    --ip=*) ip="${1#--ip=}" ;;
    --port) port="${2:?--port needs a number, e.g. --port 8888}"; shift ;;
    --port=*) port="${1#--port=}" ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (options: --headless, --ip ADDRESS, --port N, --help)" >&2; exit 2 ;;
  esac
  shift
done

bash scripts/setup.sh

if [ "$headless" = "1" ]; then
  exec python3 scripts/run_quickstart.py notebooks/01-quickstart.ipynb
fi

# A free port: 8888 if it is free, else one the system picks.
if [ -z "$port" ]; then
  port=$(python3 - "$ip" <<'PY'
import socket, sys
ip = "127.0.0.1" if sys.argv[1] in ("0.0.0.0", "") else sys.argv[1]
for port in (8888, 0):
    with socket.socket() as s:
        try:
            s.bind((ip, port))
        except OSError:
            continue
        print(s.getsockname()[1])
        break
PY
)
fi
token=$(python3 -c "import secrets; print(secrets.token_hex(24))")
shown_host=$ip
[ "$ip" = "0.0.0.0" ] && shown_host=127.0.0.1
extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--ServerApp.allow_root=True)  # containers often run as root

cat <<MSG

overseer_nb demo: JupyterLab is starting on the notebooks in notebooks/.
Open this URL in a browser (it holds the access token):

    http://${shown_host}:${port}/lab/tree/01-quickstart.ipynb?token=${token}

Stop it with Ctrl-C (twice). No browser? Run: bash scripts/demo.sh --headless

MSG
exec python3 -m jupyterlab --no-browser \
  --ServerApp.ip="$ip" --ServerApp.port="$port" --ServerApp.port_retries=0 \
  --IdentityProvider.token="$token" --ServerApp.root_dir="$PWD/notebooks" \
  --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
  "${extra[@]}"
