# Call 2 of run 10, as sent to the device tool (the still-warm H200; /tmp/parts_continuation held
# call 1's six runs, each cut back to its step-57,000 checkpoint).
source scripts/gpu_env.sh; R=/tmp/parts_continuation; ls $R || exit 3
for n in control sigma_x_0.2 sigma_x_0.3; do
  case $n in control) f="";; sigma_x_0.2) f="--config.model.sigma_x=0.2 --config.model.beta=0.125";;
    sigma_x_0.3) f="--config.model.sigma_x=0.3 --config.model.beta=0.0556";; esac
  for s in 1 2; do w=$R/${n}_seed$s
    timeout -k 30 -s TERM 228 $PY -m experiments.train --config=experiments/configs/sprites.py \
      --workdir=$w --config.seed=$s --config.data.cache=False --config.train.num_steps=10000000 \
      --config.train.max_checkpoints=1000 $f > $w/train2.log 2>&1 &
  done
done; wait
c=99999999
for w in $R/*_seed*; do
  m=$(ls $w/checkpoints | grep -E '^[0-9]+$' | awk '$1%500==0' | sort -n | tail -1)
  echo $w $(ls $w/checkpoints | tr '\n' ' '); [ "$m" -lt $c ] && c=$m
done; echo common $c
for w in $R/*_seed*; do
  for s in $(ls $w/checkpoints); do [ $s = $c ] || rm -rf $w/checkpoints/$s; done
  timeout 65 $PY -m experiments.evaluate --workdir=$w --config.data.cache=False > $w/eval2.log 2>&1 &
done; wait
for w in $R/*_seed*; do $PY -c "import json;m=json.load(open('$w/eval/metrics.json'));print('$w',m['step'],m['fg_ari'])"; done
tar czf $OUT/cont2.tar.gz --exclude=tb -C $R .
