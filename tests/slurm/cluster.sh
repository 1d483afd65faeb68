# A one-node Slurm cluster on loopback for tests: munged, slurmctld and
# slurmd with every file under one folder, on free ports. Source it, then
#   slurm_start DIR || skip with "$SLURM_SKIP"
#   ... sbatch / squeue / scancel (SLURM_CONF is exported) ...
#   slurm_stop
# slurm_start returns 1 and sets SLURM_SKIP (the reason) where a cluster
# cannot run here: not root, the daemons missing, no free ports.
# Unix socket paths must fit in 108 bytes, so munged's socket and slurmd's
# spool (where job steps make theirs) live in a short folder under /tmp,
# whatever the depth of DIR.

slurm_free_port() {
  local p
  for p in $(shuf -i 20000-40000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

slurm_start() {
  SLURM_DIR=$1
  SLURM_SKIP=""
  if [[ $(id -u) -ne 0 ]]; then SLURM_SKIP="not root: slurmd must run as root"; return 1; fi
  local exe
  for exe in munged mungekey slurmctld slurmd sbatch squeue scancel; do
    if ! command -v "$exe" >/dev/null && [[ ! -x /usr/sbin/$exe ]]; then
      SLURM_SKIP="$exe is not installed (Debian packages slurm-wlm and munge)"; return 1
    fi
  done
  export PATH="$PATH:/usr/sbin"
  local ctl_port node_port
  ctl_port=$(slurm_free_port) && node_port=$(slurm_free_port) || { SLURM_SKIP="no free port on 127.0.0.1"; return 1; }
  [[ $ctl_port != "$node_port" ]] || { SLURM_SKIP="no two free ports on 127.0.0.1"; return 1; }
  rm -rf "$SLURM_DIR" && mkdir -p "$SLURM_DIR"/{munge,state,log}
  SLURM_RUN=$(mktemp -d /tmp/qlab-slurm.XXXXXX) && mkdir "$SLURM_RUN/spool" ||
    { SLURM_SKIP="cannot make a folder under /tmp"; return 1; }
  chmod 700 "$SLURM_DIR/munge"
  mungekey --create --keyfile="$SLURM_DIR/munge/munge.key" 2>"$SLURM_DIR/log/mungekey.log" ||
    dd if=/dev/urandom of="$SLURM_DIR/munge/munge.key" bs=1024 count=1 2>/dev/null
  chmod 400 "$SLURM_DIR/munge/munge.key"
  local socket="$SLURM_RUN/munge.socket"
  munged --force --key-file="$SLURM_DIR/munge/munge.key" --socket="$socket" \
    --pid-file="$SLURM_DIR/munge/munged.pid" --log-file="$SLURM_DIR/log/munged.log" \
    --seed-file="$SLURM_DIR/munge/munge.seed" 2>>"$SLURM_DIR/log/munged.log" ||
    { SLURM_SKIP="munged did not start: $(tail -1 "$SLURM_DIR/log/munged.log")"; return 1; }
  local cpus
  cpus=$(nproc)
  cat >"$SLURM_DIR/slurm.conf" <<CONF
ClusterName=qlabtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$node_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_RUN/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName=qlabnode NodeAddr=127.0.0.1 NodeHostname=$(hostname) CPUs=$cpus State=UNKNOWN
PartitionName=qlab Nodes=qlabnode Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$SLURM_DIR/slurm.conf"
  slurmctld -i -f "$SLURM_CONF" 2>>"$SLURM_DIR/log/slurmctld.err" ||
    { SLURM_SKIP="slurmctld did not start: $(tail -2 "$SLURM_DIR/log/slurmctld.log" 2>/dev/null)"; slurm_stop; return 1; }
  slurmd -N qlabnode -f "$SLURM_CONF" 2>>"$SLURM_DIR/log/slurmd.err" ||
    { SLURM_SKIP="slurmd did not start: $(tail -2 "$SLURM_DIR/log/slurmd.log" 2>/dev/null)"; slurm_stop; return 1; }
  local i
  for i in $(seq 1 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then return 0; fi
    sleep 0.5
  done
  SLURM_SKIP="the node never came up: $(tail -3 "$SLURM_DIR/log/slurmd.log" 2>/dev/null | tr '\n' ' ')"
  slurm_stop
  return 1
}

slurm_stop() {
  local f
  for f in slurmd.pid slurmctld.pid munge/munged.pid; do
    [[ -f $SLURM_DIR/$f ]] && kill "$(cat "$SLURM_DIR/$f")" 2>/dev/null
  done
  sleep 0.5
  [[ -n ${SLURM_RUN:-} ]] && rm -rf "$SLURM_RUN"
  return 0
}

# Waits until job $1 (and its array tasks) left the queue; 1 after $2 seconds.
slurm_wait() {
  local job=$1 limit=${2:-600} i
  for ((i = 0; i < limit * 2; i++)); do
    [[ -z $(squeue -h -j "$job" 2>/dev/null) ]] && return 0
    sleep 0.5
  done
  return 1
}
