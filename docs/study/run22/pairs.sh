cd /work/main; . .venv/bin/activate
for W in /tmp/r20/sigma14_s2 /tmp/r20/sigma14_s3 /tmp/r20/sigma20_s2 /tmp/r20/sigma20_s3 /tmp/r21/distill0.05_s2 /tmp/r21/distill0.05_s3 /tmp/r20/sigma10_s2 /tmp/r20/sigma10_s3; do
  n=$(basename $W)
  [ -e /work/r22/pairs/${n}_step64000.json ] || python -m experiments.evaluate --workdir=$W --step=64000 --output=/work/r22/pairs/${n}_step64000.json > /dev/null 2>&1
  python -m experiments.evaluate --workdir=$W --step=64500 --config.eval.average_checkpoints=2 --output=/work/r22/pairs/${n}_avg64000_64500.json > /dev/null 2>&1
  cp $W/eval/metrics.json /work/r22/pairs/${n}_step64506.json
  echo $n done
done
