#!/usr/bin/env bash
# make demo: a real deployment of examples/forum (its cd environment) onto a
# local test fleet of three sshd hosts with their own /nix, on this machine.
# Installs what is missing (Debian, as root), deploys, shows what each host
# runs, changes the forum servers' release and redeploys only them, then
# takes the fleet down.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
	echo "make demo: run as root (the local fleet uses mount namespaces and sshd)" >&2
	exit 1
fi
missing=()
command -v nix-store >/dev/null || missing+=(nix-bin)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v unshare >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

deploy=bin/deploy
fleet=bin/localfleet
state=.fleet
dep=examples/forum/cd
nixopt=(--nix-option substituters=) # no network here: do not wait on cache.nixos.org

"$fleet" down --state "$state" >/dev/null 2>&1 || true
say "starting a local fleet: lb, forum-1, forum-2"
"$fleet" up --state "$state" --base-port 0 --cue "$dep/localfleet.cue" --package cd lb forum-1 forum-2 2>/dev/null
trap 'say "taking the fleet down"; "$fleet" down --state "$state"; rm -f "$dep/localfleet.cue"' EXIT

show() {
	"$fleet" list --state "$state" | awk 'NR > 1 {print $1, $2}' | while read -r name port; do
		sys=$(ssh -n -F /dev/null -i "$state/client_key" -p "$port" -o IdentitiesOnly=yes -o BatchMode=yes \
			-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$state/known_hosts" root@127.0.0.1 \
			'readlink /run/current-system; grep -ho "forum-app-[0-9a-z]*" /run/current-system/etc/forum.conf 2>/dev/null || true' | paste -sd' ')
		printf '  %-8s %s\n' "$name" "$sys"
	done
}

say "deploy validate $dep"
"$deploy" validate "$dep"

say "deploy hosts (the fleet's addresses and ports come from $dep/localfleet.cue)"
"$deploy" -C "$dep" hosts

say "deploy eval --on forum-1: every command a deploy would run, touching nothing"
"$deploy" -C "$dep" eval --on forum-1 "${nixopt[@]}"

say "deploy: first deployment of every host"
"$deploy" -C "$dep" "${nixopt[@]}"

say "what each host runs now"
show

say "deploy again: nothing to do"
"$deploy" -C "$dep" "${nixopt[@]}"

say "new forum release: deploy -t release=2 --on tag:forum (the load balancer is not touched)"
"$deploy" -C "$dep" -t release=2 --on tag:forum "${nixopt[@]}"

say "what each host runs now (only forum-1 and forum-2 changed)"
show

say "a release whose activation fails on forum-2: forum-2 is rolled back, forum-1 goes ahead, the exit code says so"
set +e
"$deploy" -C "$dep" -t release=3 -t failActivation=forum-2 --on tag:forum "${nixopt[@]}"
echo "deploy exited with $?"
set -e

say "what each host runs now (forum-2 back on release 2)"
show
