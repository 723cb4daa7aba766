#!/usr/bin/env bash
# A real single-node SLURM cluster for the tests: munge, MariaDB, slurmdbd, slurmctld, slurmd.
#   cluster.sh install        apt-get the distribution's packages (Debian 12: Slurm 22.05)
#   cluster.sh up DIR         start everything with all state under DIR; prints env to source
#   cluster.sh down DIR       stop what `up` started (by PID) and remove the config it installed
# No systemd here: every daemon is started by hand. One fake GPU (GRES on /dev/null).
set -euo pipefail

cmd=${1:?usage: cluster.sh install|up DIR|down DIR}
dir=${2:-}
DBPORT=${LRSCALE_TEST_DBPORT:-3307}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local t=$1 what=$2; shift 2
  for _ in $(seq "$((t * 5))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "cluster.sh: timed out waiting for $what" >&2
  return 1
}

case $cmd in
install)
  if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm slurmdbd mariadb-server munge >/dev/null
  fi
  ;;
up)
  mkdir -p "$dir"/{state,spool,mysql,log}
  dir=$(cd "$dir" && pwd)
  # munge (as user munge, socket dir first)
  mkdir -p /run/munge && chown munge:munge /run/munge
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null;
                                    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/lrscale-test.pid
    cp /run/munge/lrscale-test.pid "$dir/munged.pid"
  fi
  wait_for 10 munge munge -n
  # MariaDB on loopback TCP, datadir under $dir
  mariadb-install-db --user=root --datadir="$dir/mysql" --auth-root-authentication-method=normal >"$dir/log/mysql-install.log" 2>&1
  mariadbd --user=root --datadir="$dir/mysql" --socket="$dir/mysql.sock" --bind-address=127.0.0.1 \
    --port="$DBPORT" --pid-file="$dir/mariadbd.pid" --log-error="$dir/log/mariadb.log" &
  wait_for 30 mariadb mariadb -S "$dir/mysql.sock" -u root -e "select 1"
  mariadb -S "$dir/mysql.sock" -u root -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmtest';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  nodemem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  cpus=$(nproc)
  cat >"$dir/slurm.conf" <<EOF
ClusterName=lrscale
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=600
KillWait=5
NodeName=localhost CPUs=$cpus RealMemory=$((nodemem - 1024)) Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$dir/gres.conf" <<EOF
AutoDetect=off
NodeName=localhost Name=gpu Count=1 File=/dev/null
EOF
  cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBPORT
StorageUser=slurm
StoragePass=slurmtest
StorageLoc=slurm_acct_db
PidFile=$dir/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
EOF
  chmod 600 "$dir/slurmdbd.conf"
  # The executor plugin strips SLURM_CONF inside jobs: the job step's srun must find the config
  # at the default path, so install it there (removed again by `down`).
  mkdir -p /etc/slurm
  for f in slurm.conf gres.conf slurmdbd.conf; do
    [ -e "/etc/slurm/$f" ] && [ ! -e "$dir/orig.$f" ] && cp -p "/etc/slurm/$f" "$dir/orig.$f"
    cp -p "$dir/$f" "/etc/slurm/$f"
  done
  export SLURM_CONF=/etc/slurm/slurm.conf
  slurmdbd
  wait_for 30 slurmdbd bash -c "sacctmgr -n list cluster >/dev/null"
  sacctmgr -i add cluster lrscale >/dev/null 2>&1 || true
  slurmctld -i
  wait_for 30 slurmctld scontrol ping
  slurmd -N localhost
  wait_for 60 "an idle node" bash -c "sinfo -h -o %T | grep -qx idle"
  sacctmgr -i add account lrscale Cluster=lrscale >/dev/null 2>&1 || true
  sacctmgr -i add user root Account=lrscale DefaultAccount=lrscale >/dev/null 2>&1 || true
  echo "export SLURM_CONF=/etc/slurm/slurm.conf"
  ;;
down)
  dir=$(cd "$dir" && pwd)
  for p in slurmd slurmctld slurmdbd mariadbd munged; do
    if [ -s "$dir/$p.pid" ]; then kill "$(cat "$dir/$p.pid")" 2>/dev/null || true; fi
  done
  sleep 1
  for p in slurmd slurmctld slurmdbd mariadbd munged; do
    if [ -s "$dir/$p.pid" ]; then kill -9 "$(cat "$dir/$p.pid")" 2>/dev/null || true; fi
  done
  for f in slurm.conf gres.conf slurmdbd.conf; do
    if [ -e "$dir/orig.$f" ]; then cp -p "$dir/orig.$f" "/etc/slurm/$f"; else rm -f "/etc/slurm/$f"; fi
  done
  ;;
*)
  echo "usage: cluster.sh install|up DIR|down DIR" >&2
  exit 2
  ;;
esac
