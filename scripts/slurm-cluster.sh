#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, from Debian's slurm-wlm and munge packages:
# munged, slurmctld and slurmd run as plain daemons (no systemd) with every file under DIR, on
# free TCP ports, so that several clusters (several test runs) can live side by side.
#
#   scripts/slurm-cluster.sh start DIR   # prints `export SLURM_CONF=DIR/slurm.conf`; exit 0 when
#                                        # the node is idle, 1 (with the reason) when Slurm cannot start
#   scripts/slurm-cluster.sh stop DIR    # ends the daemons started in DIR
#
# Partitions: `low` (default, PriorityTier=1, jobs preempted by requeue) and `high` (PriorityTier=10).
# Settings that make a test cluster quick (shared/design/SLURM.md): the scheduler looks every 2 s
# (sched_interval=2, default 60 s), credentials expire after 5 s (cred_expire=5, default 120 s:
# a requeued job waits for it), KillWait=5 s between SIGTERM and SIGKILL (default 30 s).
# Time limits are still checked on slurmctld's fixed 30 s timer, and the smallest --time is 1 min.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 64; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  # Jobs' processes left behind by a slurmd that was ended (slurmstepd, the job scripts).
  pkill_tree() { for c in $(pgrep -P "$1" 2>/dev/null); do pkill_tree "$c"; done; kill -9 "$1" 2>/dev/null || true; }
  for pid in $(pgrep -f "slurmstepd.*" 2>/dev/null || true); do
    if grep -qs "$dir" "/proc/$pid/environ" 2>/dev/null || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$dir"; then
      pkill_tree "$pid"
    fi
  done
}

fail() { echo "slurm-cluster: cannot start Slurm: $*" >&2; stop; exit 1; }

start() {
  for tool in munged slurmctld slurmd sbatch scontrol sinfo; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install slurm-wlm munge)"
  done
  stop
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
  chmod 0755 "$dir" "$dir/munge"   # munged refuses a socket folder others cannot reach
  key="$dir/munge/munge.key"
  [ -f "$key" ] || { head -c 1024 /dev/urandom >"$key"; chmod 0400 "$key"; }
  socket="$dir/munge/munge.socket"
  munged --force --socket="$socket" --key-file="$key" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
    || fail "munged did not start (see $dir/log/munged.log)"

  user=$(id -un)
  cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -1)
  memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  host=$(hostname -s)
  cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm-cluster.sh: a single-node test cluster in $dir.
ClusterName=stasis$(printf '%s' "$dir" | cksum | cut -c1-6)
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket,cred_expire=5
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
JobRequeue=1
KillWait=5
MinJobAge=600
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
MpiDefault=none
NodeName=localhost NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=low Nodes=localhost Default=YES PriorityTier=1 PreemptMode=REQUEUE GraceTime=0 MaxTime=INFINITE State=UP
PartitionName=high Nodes=localhost PriorityTier=10 PreemptMode=OFF MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF" -i >>"$dir/log/slurmctld.out" 2>&1 \
    || fail "slurmctld did not start: $(tail -3 "$dir/log/slurmctld.log" "$dir/log/slurmctld.out" 2>/dev/null)"
  slurmd -f "$SLURM_CONF" -N localhost >>"$dir/log/slurmd.out" 2>&1 \
    || fail "slurmd did not start: $(tail -3 "$dir/log/slurmd.log" "$dir/log/slurmd.out" 2>/dev/null)"
  for _ in $(seq 150); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
    if [ "$state" = idle ]; then
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.2
  done
  fail "the node did not become idle within 30 s (state '${state:-?}'; see $dir/log/)"
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
