#!/bin/bash
# A Slurm batch job that survives its time limit, preemption and the loss of its node: copy it,
# change the lines marked EDIT. Every start of the job (the first, and every requeue) runs the same
# command: `stasis run --resume-if-present` resumes the snapshot when there is one, of this very
# program, and starts the program otherwise.
#
#   cd samples/slurm && sbatch job.sh       # then: tail -f stasis-job-<id>.out
#
# - Time limit: Slurm sends USR1 to this script 300 s before the limit (--signal=B:USR1@300;
#   Slurm checks limits every 30 s, so it comes up to 30 s early). The script passes it on; the
#   program suspends into $SNAP and exits 75; the script requeues the job.
# - Preemption: Slurm sends TERM (to every process of the job, or to this script first when the
#   partition has a GraceTime), then KILL after KillWait/GraceTime. TERM suspends the program too;
#   the job is requeued (by Slurm with PreemptMode=REQUEUE, or by this script).
# - A lost node (no warning): the requeued job resumes from the last periodic checkpoint,
#   --checkpoint-every seconds old at most. Slurm requeues a job whose node failed; a job whose
#   processes were killed otherwise ends FAILED: `scontrol requeue JOBID` starts it again.
# - Cancelling: `scancel JOBID` sends TERM, which suspends and requeues the job like a preemption.
#   To end it for good: `scontrol hold JOBID; scancel JOBID` (held jobs are not started again), or
#   `touch $SNAP.stop` first (this script then does not requeue).
#
#SBATCH --job-name=stasis-job
#SBATCH --time=02:00:00                # EDIT: the time limit of one run
#SBATCH --signal=B:USR1@300            # the warning before the time limit, to this script
#SBATCH --requeue                      # may be started again
#SBATCH --open-mode=append             # every run of the job appends to the same log
#SBATCH --output=stasis-job-%j.out

STASIS=${STASIS:-stasis}                              # EDIT: where stasis is installed
SNAP=${SNAP:-$PWD/stasis-job-$SLURM_JOB_ID.snap}      # EDIT: on storage every node sees
EVERY=${EVERY:-600}                                   # EDIT: seconds between periodic checkpoints
# EDIT: the program and its arguments (the job runs in the folder sbatch was called from; Slurm
# runs a copy of this script, so $0 does not say where it was).
PROGRAM=(${PROGRAM:-${SLURM_SUBMIT_DIR:-.}/long_computation.py --segments 4000 --out primes.txt})

echo "job $SLURM_JOB_ID: start $((${SLURM_RESTART_COUNT:-0} + 1)) (SLURM_RESTART_COUNT=${SLURM_RESTART_COUNT:-0}) on $(hostname) at $(date '+%F %T')"

"$STASIS" run --snapshot "$SNAP" --resume-if-present --checkpoint-every "$EVERY" \
    --signal USR1 --signal TERM "${PROGRAM[@]}" &
pid=$!
# bash runs a trap only once the command it waits for returns: hence `wait` in a loop.
trap 'echo "job $SLURM_JOB_ID: USR1 (time limit near): suspending"; kill -USR1 $pid 2>/dev/null' USR1
trap 'echo "job $SLURM_JOB_ID: TERM (preemption or cancel): suspending"; kill -TERM $pid 2>/dev/null' TERM
while :; do
    wait $pid
    kill -0 $pid 2>/dev/null || break
done
wait $pid
status=$?

trap - USR1 TERM   # from here on, Slurm's TERM (the requeue ends this run) just ends this script
if [ $status -eq 75 ] && [ ! -e "$SNAP.stop" ]; then
    echo "job $SLURM_JOB_ID: suspended into $SNAP; requeued"
    scontrol requeue "$SLURM_JOB_ID" 2>/dev/null || true   # after a preemption Slurm has done it
    exit 0
fi
echo "job $SLURM_JOB_ID: ended with status $status at $(date '+%F %T')"
exit $status
