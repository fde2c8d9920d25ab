"""The maintainers' scripts: how the shipped corpus was built, the metrics validated against the
paper, and the shipped checkpoints trained. Users never need them; they are kept so that every
asset in ``data/`` can be remade and checked.

Run them from the repository root:

- ``python -m dcu.scripts.build_corpus [SOURCE] [--force] [--extra-train-pairs]``: the shipped
  corpus in ``data/corpus``, ``data/noise`` and ``data/splits`` (protocol: data/README.md), and
  on request the 104 training pairs it lists but does not ship;
- ``python -m dcu.scripts.build_voices [SOURCE]``: the tables of the LibriSpeech utterances
  dcu uses and the recipes of the unseen-voices splits (``data/splits``);
- ``python -m dcu.scripts.validate_noisy [--data DIR]``: the metrics on the real VoiceBank+DEMAND
  noisy inputs against the paper's "noisy" row (``data/validation/``);
- ``python -m dcu.scripts.compare_models --out FILE --model NAME=PATH ... [--against NEW=OLD]``:
  every evaluation set scored for the baselines and the models, with paired differences
  (``data/results/generalization.json``);
- ``python -m dcu.scripts.measure_levels [--out data/results/levels.json]``: how the shipped
  models cope with quiet and loud input;
- ``python -m dcu.scripts.sweep_mix --label L --start OLD.pt --end NEW.pt``: weight mixes of a
  fine-tune with its starting weights, scored on the validation sets
  (``data/results/weight_mix.json``);
- ``python -m dcu.scripts.listening --out DIR --model LABEL=PATH ... --clip SET:INDEX[:START-END]``:
  what checkpoints that do not ship make of shipped excerpts, as audio for the book
  (``data/results/audio/causal``, chapter 10);
- ``bash dcu/scripts/train_gpu.sh BUDGET_MINUTES``, ``bash dcu/scripts/finetune_cpu.sh``,
  ``bash dcu/scripts/train_general.sh cpu|gpu``, ``bash dcu/scripts/train_voices.sh``: the
  training drivers of the shipped checkpoints, of the generalizing fine-tune
  (data/checkpoints/README.md) and of the many-voices runs.

``data/`` holds only assets and results. These scripts may import anything in :mod:`dcu`;
nothing in :mod:`dcu` imports them (tests/test_layout.py checks it).

Book: book/01_introduction.ipynb (the corpus), book/07_training.ipynb (the shipped runs),
book/08_evaluation.ipynb (the metrics).
"""
