#!/usr/bin/env bash
# start-cluster.sh - start reflow's throw-away single-node Slurm cluster for
# the test suite (the Slurm executor's tests submit real jobs to it).
#
# Daemons: munged, slurmctld, slurmd and (default on) MariaDB + slurmdbd so
# that `sacct` works. Runs as root on Debian 12 (Slurm 22.05) without systemd.
# Idempotent: if the cluster is already up with the same configuration it only
# prints the READY line. .ci/run calls it; developers run it by hand (as root)
# to get the cluster tests to run instead of skip. Stop: stop-cluster.sh.
#
# Memory enforcement, as found on this machine kind (python-svc, 2 cores, 24 GiB):
#   the cgroup-v1 controllers are mounted under /sys/fs/cgroup (memory at
#   /sys/fs/cgroup/memory, writable by root; cgroup2 only at .../unified), so
#   SLURM_CI_MEMORY=auto selects cgroup: slurmd's task/cgroup puts every job
#   step in a memory cgroup limited to its --mem, the kernel OOM-kills inside
#   it, and the job ends OUT_OF_MEMORY (exit 0:125) within ~2 s. Slurm 22.05's
#   cgroup/v2 plugin needs systemd, so on a cgroup-v2-only machine auto falls
#   back to off (--mem is then not enforced and the OOM test skips).
#
# Usage: start-cluster.sh [--fresh] [--no-slurmdbd | --slurmdbd] [--help]
# Settings (environment variables, all optional):
#   SLURM_CI_ACCOUNTING  slurmdbd (default) | none
#   SLURM_CI_MEMORY      auto (default) | cgroup | off - memory limits (--mem):
#                        cgroup = memory is consumable and each job step runs
#                        in a cgroup-v1 memory cgroup: over --mem -> OUT_OF_MEMORY
#                        (fails if no cgroup-v1 memory controller works);
#                        auto = cgroup if a cgroup-v1 memory controller works, else off;
#                        off = memory is not consumable, --mem is not enforced.
#   SLURM_CI_DIR         state, logs, pid files   (default /var/spool/slurm-ci)
#   SLURM_CI_CLUSTER     ClusterName              (default ci)
#   SLURM_CI_PARTITION   partition name           (default debug)
#   SLURM_CI_CPUS        CPUs advertised          (default 8, whatever the host has)
#   SLURM_CI_MEM_MB      RealMemory advertised    (default: physical memory - 512)
#   SLURM_CI_MIN_JOB_AGE seconds finished jobs stay in scontrol/squeue (default 86400)
#   SLURM_CI_SLURMCTLD_PORT / SLURM_CI_SLURMD_PORT / SLURM_CI_SLURMDBD_PORT /
#   SLURM_CI_DB_PORT     TCP ports on loopback    (default 6817/6818/6819/16819)
#   SLURM_CI_WAIT        seconds to wait for each daemon (default 90)
#   SLURM_CI_DEBUG=1     print the time each phase took
#   SLURM_CI_FRESH=1     same as --fresh: restart and wipe state even if running
#   SLURM_CI_KEEP_STATE=1  keep job state / accounting DB across restarts
#   SLURM_CI_INSTALL=0   never run apt-get (fail if packages are missing)
#   SLURM_CI_EXTRA_CONF  extra lines appended to slurm.conf (later lines win)
set -Eeuo pipefail

SELF_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
T0=$(date +%s)

ACCOUNTING="${SLURM_CI_ACCOUNTING:-slurmdbd}"
MEMORY="${SLURM_CI_MEMORY:-auto}"
FRESH="${SLURM_CI_FRESH:-0}"
for arg in "$@"; do
  case "$arg" in
    --fresh) FRESH=1 ;;
    --no-slurmdbd|--no-accounting) ACCOUNTING=none ;;
    --slurmdbd|--accounting) ACCOUNTING=slurmdbd ;;
    -h|--help) sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "start-cluster.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
case "$ACCOUNTING" in slurmdbd|none) ;; *)
  echo "start-cluster.sh: SLURM_CI_ACCOUNTING must be 'slurmdbd' or 'none', not '$ACCOUNTING'" >&2; exit 2 ;;
esac
case "$MEMORY" in auto|cgroup|off) ;; *)
  echo "start-cluster.sh: SLURM_CI_MEMORY must be 'auto', 'cgroup' or 'off', not '$MEMORY'" >&2; exit 2 ;;
esac

BASE="${SLURM_CI_DIR:-/var/spool/slurm-ci}"
CLUSTER="${SLURM_CI_CLUSTER:-ci}"
PARTITION="${SLURM_CI_PARTITION:-debug}"
CPUS="${SLURM_CI_CPUS:-8}"
MEM_MB="${SLURM_CI_MEM_MB:-}"
MIN_JOB_AGE="${SLURM_CI_MIN_JOB_AGE:-86400}"
CTLD_PORT="${SLURM_CI_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_CI_SLURMD_PORT:-6818}"
DBD_PORT="${SLURM_CI_SLURMDBD_PORT:-6819}"
DB_PORT="${SLURM_CI_DB_PORT:-16819}"
WAIT="${SLURM_CI_WAIT:-90}"
KEEP_STATE="${SLURM_CI_KEEP_STATE:-0}"
INSTALL="${SLURM_CI_INSTALL:-1}"
EXTRA_CONF="${SLURM_CI_EXTRA_CONF:-}"

for v in CPUS MIN_JOB_AGE CTLD_PORT SLURMD_PORT DBD_PORT DB_PORT WAIT ${MEM_MB:+MEM_MB}; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "start-cluster.sh: $v must be a positive integer, not '${!v}'" >&2; exit 2; }
done

CONF_DIR=/etc/slurm                # where sbatch & co. look by default
SLURM_CONF_FILE="$CONF_DIR/slurm.conf"
DBD_CONF_FILE="$CONF_DIR/slurmdbd.conf"
CGROUP_CONF_FILE="$CONF_DIR/cgroup.conf"
MARKER="# Written by slurm-ci start-cluster.sh - will be overwritten."
RUN="$BASE/run"; LOG="$BASE/log"; DBDIR="$BASE/mysql"; DBRUN="$BASE/mysql-run"
DB_USER=slurm; DB_PASS=slurm-ci; DB_NAME=slurm_acct_db

say()  { echo "slurm-ci: $*" >&2; }
T_PHASE=$(date +%s%N)
phase() {      # phase NAME - with SLURM_CI_DEBUG=1, print how long the previous phase took
  [ "${SLURM_CI_DEBUG:-0}" = 1 ] || return 0
  local now; now=$(date +%s%N)
  printf 'slurm-ci: [debug] %-28s %5d ms\n' "$1" $(( (now - T_PHASE) / 1000000 )) >&2
  T_PHASE=$now
}
CLEANUP_ON_FAILURE=0   # set once we start daemons: a failed start stops them again
die()  {
  echo "slurm-ci: ERROR: $*" >&2
  if [ "$CLEANUP_ON_FAILURE" = 1 ]; then
    echo "slurm-ci: stopping the daemons started so far (logs stay in $LOG)" >&2
    SLURM_CI_DIR="$BASE" bash "$SELF_DIR/stop-cluster.sh" --quiet || true
  fi
  exit 1
}
show_log() {   # show_log FILE - print the end of a log to help debugging
  [ -f "$1" ] && { echo "----- last lines of $1 -----" >&2; tail -n 25 "$1" >&2; echo "-----" >&2; }
  return 0
}
# shellcheck disable=SC2154
trap 'rc=$?; trap - ERR; die "start-cluster.sh failed (exit $rc) at line $LINENO: $BASH_COMMAND"' ERR

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts system daemons)"

# The Slurm commands must read the file this script writes.
if [ -n "${SLURM_CONF:-}" ] && [ "$SLURM_CONF" != "$SLURM_CONF_FILE" ]; then
  say "WARNING: SLURM_CONF=$SLURM_CONF in the environment; the cluster uses $SLURM_CONF_FILE (unset SLURM_CONF for sbatch & co.)"
fi
export SLURM_CONF="$SLURM_CONF_FILE"

# One start at a time (e.g. several pytest workers calling this script).
install -d -m 0755 "$BASE"
exec 9>"$BASE/.start.lock"
flock -w 300 9 || die "another start-cluster.sh has held $BASE/.start.lock for 5 minutes"

HOST="$(hostname -s 2>/dev/null || true)"
[ -n "$HOST" ] || HOST=localhost

# --------------------------------------------------------------------------
# helpers for pid files: a daemon is "ours" when its pid file exists under
# $RUN (or $DBRUN) and the process with that pid has the expected name.
pidfile_of() {
  case "$1" in mariadbd) echo "$DBRUN/mariadbd.pid" ;; *) echo "$RUN/$1.pid" ;; esac
}
alive() {     # alive NAME -> 0 if our daemon NAME is running (zombies do not count)
  local f pid stat; f="$(pidfile_of "$1")"
  [ -s "$f" ] || return 1
  pid="$(tr -dc '0-9' < "$f")"
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"; [ "${stat%% *}" != Z ]
}
spawn() {     # spawn OUTFILE COMMAND... - start a daemon with stdin /dev/null, output to
              # OUTFILE and none of the other file descriptors this script inherited
              # (a CI runner's pipes must not stay open in the daemons).
  local out="$1"; shift
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd="${fd##*/}"
      case "$fd" in 0|1|2) ;; *) eval "exec $fd>&-" 2>/dev/null || true ;; esac
    done
    exec "$@" </dev/null >>"$out" 2>&1
  )
}
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND... (polls every 0.2 s)
  # If WATCH names a daemon, give up as soon as that daemon has exited.
  local secs="$1" what="$2"; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { say "timed out after ${secs}s waiting for $what"; return 1; }
    if [ -n "${WATCH:-}" ] && [ -s "$(pidfile_of "$WATCH")" ] && ! alive "$WATCH"; then
      sleep 0.5; "$@" >/dev/null 2>&1 && return 0
      say "$WATCH exited while waiting for $what"; return 1
    fi
    sleep 0.2
  done
}

# --------------------------------------------------------------------------
# 1. packages
PKGS=(munge slurm-client slurmctld slurmd)
[ "$ACCOUNTING" = slurmdbd ] && PKGS+=(slurmdbd mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$INSTALL" = 1 ] || die "missing Debian packages: ${missing[*]} (SLURM_CI_INSTALL=0)"
  say "installing ${missing[*]} ..."
  t_inst=$(date +%s)
  # Keep package maintainer scripts from starting the daemons themselves
  # (only if the machine has no policy of its own).
  tmp_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; tmp_policy=1
  fi
  apt_ok=0
  for attempt in 1 2 3; do
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq >"/tmp/slurm-ci-apt.log" 2>&1 &&
       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
         -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
         "${missing[@]}" >>"/tmp/slurm-ci-apt.log" 2>&1; then apt_ok=1; break; fi
    say "apt-get failed (attempt $attempt), retrying ..."; sleep 3
  done
  [ "$tmp_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$apt_ok" = 1 ] || { show_log /tmp/slurm-ci-apt.log; die "apt-get install ${missing[*]} failed"; }
  say "installed in $(( $(date +%s) - t_inst ))s"
fi
phase "packages"
for b in munged munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo; do
  command -v "$b" >/dev/null || die "'$b' not found after installing packages"
done

# --------------------------------------------------------------------------
# 2. configuration (written to a temp dir, compared with what is in place)
if [ -z "$MEM_MB" ]; then
  MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2/1024}' /proc/meminfo)
  MEM_MB=$(( MEM_MB > 1024 ? MEM_MB - 512 : MEM_MB ))   # leave a little for the OS
fi
# cgroup v1 memory controller usable? (Slurm 22.05 needs systemd for cgroup v2)
cgroup_v1_memory_ok() {
  local d="/sys/fs/cgroup/memory/slurm-ci-probe.$$"
  grep -qE '^[^ ]+ /sys/fs/cgroup/memory cgroup [^ ]*\bmemory\b' /proc/mounts || return 1
  mkdir "$d" 2>/dev/null || return 1
  local ok=0
  echo 104857600 > "$d/memory.limit_in_bytes" 2>/dev/null && ok=1
  rmdir "$d" 2>/dev/null || true
  [ "$ok" = 1 ]
}
if [ "$MEMORY" = auto ]; then
  if cgroup_v1_memory_ok; then MEMORY=cgroup; else MEMORY=off; fi
elif [ "$MEMORY" = cgroup ] && ! cgroup_v1_memory_ok; then
  die "SLURM_CI_MEMORY=cgroup but no usable cgroup-v1 memory controller at /sys/fs/cgroup/memory (use auto or off)"
fi
if [ "$MEMORY" = cgroup ]; then
  SELECT_PARAMS=CR_CPU_Memory; TASK_PLUGIN=task/cgroup
else
  SELECT_PARAMS=CR_CPU; TASK_PLUGIN=task/none
fi
DEF_MEM_PER_CPU=$(( MEM_MB / CPUS ))

NEW="$(mktemp -d /tmp/slurm-ci-conf.XXXXXX)"
cleanup_new() { rm -rf "$NEW"; }
trap cleanup_new EXIT

cat > "$NEW/slurm.conf" <<EOF
$MARKER
# Single-node test cluster: node $HOST, $CPUS CPUs advertised, accounting=$ACCOUNTING, memory=$MEMORY
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$BASE/slurmctld
SlurmdSpoolDir=$BASE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# Track job processes through /proc (no freezer cgroup). With memory=cgroup,
# task/cgroup puts each job step in a cgroup-v1 memory cgroup (--mem limit).
ProctrackType=proctrack/linuxproc
TaskPlugin=$TASK_PLUGIN
MpiDefault=none
SwitchType=switch/none
# Scheduling: jobs share the node by CPU; schedule quickly.
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=$SELECT_PARAMS
# Advertise $CPUS CPUs whatever the machine has, so several jobs run at once.
SlurmdParameters=config_overrides
ReturnToService=2
# Requests the node can never satisfy fail at submit time instead of pending.
EnforcePartLimits=ALL
# Finished jobs stay visible to scontrol/squeue for MinJobAge seconds.
MinJobAge=$MIN_JOB_AGE
MaxJobCount=100000
MaxArraySize=100001
KillWait=5
InactiveLimit=0
Waittime=0
OverTimeLimit=0
SlurmctldTimeout=60
SlurmdTimeout=300
MessageTimeout=20
# Accounting
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=5
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.txt
EOF
if [ "$MEMORY" = cgroup ]; then
  cat >> "$NEW/slurm.conf" <<EOF
# Jobs without --mem get their share of the node's memory per CPU.
DefMemPerCPU=$DEF_MEM_PER_CPU
EOF
  cat > "$NEW/cgroup.conf" <<EOF
$MARKER
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
ConstrainCores=no
ConstrainDevices=no
EOF
fi
if [ "$ACCOUNTING" = slurmdbd ]; then
  cat >> "$NEW/slurm.conf" <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoreFlags=job_comment
EOF
  cat > "$NEW/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
else
  echo "AccountingStorageType=accounting_storage/none" >> "$NEW/slurm.conf"
fi
cat >> "$NEW/slurm.conf" <<EOF
# Node and partition
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
if [ -n "$EXTRA_CONF" ]; then
  printf '# From SLURM_CI_EXTRA_CONF\n%s\n' "$EXTRA_CONF" >> "$NEW/slurm.conf"
fi

same_conf() {
  cmp -s "$NEW/slurm.conf" "$SLURM_CONF_FILE" || return 1
  if [ "$ACCOUNTING" = slurmdbd ]; then cmp -s "$NEW/slurmdbd.conf" "$DBD_CONF_FILE" || return 1; fi
  if [ "$MEMORY" = cgroup ]; then cmp -s "$NEW/cgroup.conf" "$CGROUP_CONF_FILE" || return 1; fi
  return 0
}
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
ctld_up()  { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_state() { sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n1; }
node_ready() { case "$(node_state)" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac; }
dbd_up()   { sacctmgr -n -P list cluster format=cluster >/dev/null 2>&1; }

summary() {
  echo "slurm-ci: READY ($1) cluster=$CLUSTER node=$HOST cpus=$CPUS mem=${MEM_MB}MB partition=$PARTITION accounting=$ACCOUNTING memory=$MEMORY conf=$SLURM_CONF_FILE logs=$LOG elapsed=$(( $(date +%s) - T0 ))s"
}

# --------------------------------------------------------------------------
# 3. already running with the same configuration? -> nothing to do.
all_alive() {
  alive slurmctld && alive slurmd || return 1
  if [ "$ACCOUNTING" = slurmdbd ]; then alive slurmdbd && alive mariadbd || return 1; fi
  return 0
}
if [ "$FRESH" != 1 ] && same_conf && all_alive && munge_ok && ctld_up; then
  wait_for "$WAIT" "node $HOST to become idle" node_ready ||
    { show_log "$LOG/slurmd.log"; die "cluster running but node $HOST is '$(node_state)'"; }
  summary "already running"
  exit 0
fi

phase "config + checks"
# Something is missing or the configuration changed: stop what we started.
# (First the cluster the current slurm.conf describes, which may have used
# another SLURM_CI_DIR, then anything left under this BASE.)
if [ -f "$SELF_DIR/stop-cluster.sh" ]; then
  env -u SLURM_CI_DIR bash "$SELF_DIR/stop-cluster.sh" --quiet || die "stop-cluster.sh failed"
  SLURM_CI_DIR="$BASE" bash "$SELF_DIR/stop-cluster.sh" --quiet || die "stop-cluster.sh failed"
else
  die "stop-cluster.sh not found next to start-cluster.sh ($SELF_DIR)"
fi

CLEANUP_ON_FAILURE=1
phase "stop previous daemons"

# --------------------------------------------------------------------------
# 4. directories and config files
if [ "$KEEP_STATE" != 1 ]; then
  rm -rf "$BASE/slurmctld" "$BASE/slurmd" "$DBDIR" "$LOG"
fi
install -d -m 0755 "$BASE" "$RUN" "$LOG" "$BASE/slurmctld" "$BASE/slurmd"
install -d -m 0755 "$CONF_DIR"
if [ -f "$SLURM_CONF_FILE" ] && ! grep -qxF "$MARKER" "$SLURM_CONF_FILE" && [ ! -e "$SLURM_CONF_FILE.slurm-ci-backup" ]; then
  cp -p "$SLURM_CONF_FILE" "$SLURM_CONF_FILE.slurm-ci-backup"
  say "kept the previous $SLURM_CONF_FILE as $SLURM_CONF_FILE.slurm-ci-backup"
fi
install -m 0644 "$NEW/slurm.conf" "$SLURM_CONF_FILE"
if [ "$ACCOUNTING" = slurmdbd ]; then
  install -m 0600 -o root -g root "$NEW/slurmdbd.conf" "$DBD_CONF_FILE"
fi
if [ "$MEMORY" = cgroup ]; then
  if [ -f "$CGROUP_CONF_FILE" ] && ! grep -qxF "$MARKER" "$CGROUP_CONF_FILE" && [ ! -e "$CGROUP_CONF_FILE.slurm-ci-backup" ]; then
    cp -p "$CGROUP_CONF_FILE" "$CGROUP_CONF_FILE.slurm-ci-backup"
  fi
  install -m 0644 "$NEW/cgroup.conf" "$CGROUP_CONF_FILE"
elif [ -f "$CGROUP_CONF_FILE" ] && grep -qxF "$MARKER" "$CGROUP_CONF_FILE"; then
  rm -f "$CGROUP_CONF_FILE"
fi

phase "write files"
# --------------------------------------------------------------------------
# 5. munge (reuse a working munged, else start our own)
if munge_ok; then
  say "munge already works - reusing the running munged"
else
  if [ ! -s /etc/munge/munge.key ]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
  spawn "$LOG/munged.stdout" runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid ||
    { cat "$LOG/munged.stdout" >&2; show_log /var/log/munge/munged.log; die "munged did not start"; }
  wait_for "$WAIT" "munged" munge_ok || { show_log /var/log/munge/munged.log; die "munge does not work"; }
  cp /run/munge/munged.pid "$RUN/munged.pid"
fi

phase "munged"
# --------------------------------------------------------------------------
# 6. MariaDB + slurmdbd (optional)
if [ "$ACCOUNTING" = slurmdbd ]; then
  for b in mariadbd mariadb mariadb-install-db slurmdbd sacctmgr sacct; do
    command -v "$b" >/dev/null || die "'$b' not found"
  done
  install -d -o mysql -g mysql -m 0750 "$DBRUN"
  if [ ! -d "$DBDIR/mysql" ]; then
    install -d -o mysql -g mysql -m 0750 "$DBDIR"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DBDIR" \
      --auth-root-authentication-method=socket --skip-test-db >"$LOG/mariadb-install.log" 2>&1 ||
      { show_log "$LOG/mariadb-install.log"; die "mariadb-install-db failed"; }
  fi
  touch "$LOG/mariadb.log"; chown mysql:mysql "$LOG/mariadb.log"
  spawn /dev/null setsid -f /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DBDIR" \
    --socket="$DBRUN/mysqld.sock" --pid-file="$DBRUN/mariadbd.pid" --log-error="$LOG/mariadb.log" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve --skip-log-bin \
    --innodb-buffer-pool-size=128M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
    --max-connections=100 --tmpdir="$DBRUN"
  sql() { mariadb --no-defaults --socket="$DBRUN/mysqld.sock" -uroot -N -B -e "$1"; }
  WATCH=mariadbd wait_for "$WAIT" "MariaDB" sql 'SELECT 1' || { show_log "$LOG/mariadb.log"; die "MariaDB did not start"; }
  alive mariadbd || wait_for 10 "mariadbd pid file" alive mariadbd || die "mariadbd pid file missing"
  phase "mariadbd"
  sql "CREATE DATABASE IF NOT EXISTS $DB_NAME;
       CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
       CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
       GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
       GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';" || die "could not create the accounting database"

  phase "database + user"
  spawn "$LOG/slurmdbd.stdout" slurmdbd ||
    { cat "$LOG/slurmdbd.stdout" >&2; show_log "$LOG/slurmdbd.log"; die "slurmdbd did not start"; }
  WATCH=slurmdbd wait_for "$WAIT" "slurmdbd" dbd_up || { show_log "$LOG/slurmdbd.log"; die "slurmdbd does not answer"; }
  if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
  fi
fi

phase "slurmdbd + cluster"
# --------------------------------------------------------------------------
# 7. slurmctld and slurmd
spawn "$LOG/slurmctld.stdout" slurmctld ||
  { cat "$LOG/slurmctld.stdout" >&2; show_log "$LOG/slurmctld.log"; die "slurmctld did not start"; }
WATCH=slurmctld wait_for "$WAIT" "slurmctld" ctld_up || { show_log "$LOG/slurmctld.log"; die "slurmctld does not answer"; }

phase "slurmctld"
spawn "$LOG/slurmd.stdout" slurmd ||
  { cat "$LOG/slurmd.stdout" >&2; show_log "$LOG/slurmd.log"; die "slurmd did not start"; }
if ! WATCH=slurmd wait_for "$WAIT" "node $HOST to become idle" node_ready; then
  show_log "$LOG/slurmd.log"; show_log "$LOG/slurmctld.log"
  die "node $HOST is '$(node_state)', not idle"
fi
phase "slurmd + node idle"
all_alive || die "a daemon exited right after starting (see $LOG)"

# Facts for test suites (KEY=VALUE, can be sourced by sh or parsed by Python).
cat > "$BASE/cluster.env" <<EOF
SLURM_CI_CLUSTER=$CLUSTER
SLURM_CI_NODE=$HOST
SLURM_CI_PARTITION=$PARTITION
SLURM_CI_CPUS=$CPUS
SLURM_CI_MEM_MB=$MEM_MB
SLURM_CI_ACCOUNTING=$ACCOUNTING
SLURM_CI_MEMORY=$MEMORY
SLURM_CI_CONF=$SLURM_CONF_FILE
SLURM_CI_LOG_DIR=$LOG
SLURM_CI_JOBCOMP_FILE=$LOG/jobcomp.txt
EOF

summary "started"
