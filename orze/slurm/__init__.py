"""Running a campaign's node daemons as Slurm pilot jobs (`orze slurm submit|status|stop`).

- settings.py     the `slurm:` section of configs/orze.yaml (every key checked) and Slurm time syntax
- script.py       the sbatch script, a pure function of typed settings (JobSpec)
- environment.py  what a process learns from Slurm's environment: job id, node name, allocated GPUs
- client.py       sbatch/squeue/scontrol/scancel/sacct behind timeouts (a down slurmctld hangs them)
- records.py      job-id records under runs/slurm/jobs/ and the stop markers the script obeys
- report.py       jobs joined with node heartbeats, for `orze slurm status` (pure)
- localcluster.py a one-node Slurm on localhost for the tests and scripts/slurm_campaign.py
"""
