"""Keras trains the same model whether autograph converts its code or not (modules.autograph)."""
import json
import subprocess
import sys
import textwrap

# Trains the project's model for a few steps on fixed random inputs; prints the loss and
# metrics history and a checksum of the weights.
_TRAIN = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tf_keras as keras
    from modules.autograph import leave_libraries_unconverted
    from modules.hparams import HParams
    from modules.model import build_model, dense_feature_names

    if sys.argv[1] == "unconverted":
        leave_libraries_unconverted()
    hparams = HParams()
    keras.utils.set_random_seed(hparams.seed)
    sizes = {"payment_type_xf": 5, "company_xf": 12, "trip_start_hour_xf": 24}
    model = build_model(sizes, hparams)
    rng = np.random.default_rng(0)
    inputs = {name: rng.normal(size=(512, 1)).astype("float32") for name in dense_feature_names()}
    inputs.update({name: rng.integers(0, size, (512, 1)) for name, size in sizes.items()})
    labels = (inputs["payment_type_xf"][:, 0] == 1).astype("int64")
    history = model.fit(inputs, labels, batch_size=64, epochs=2, verbose=0, shuffle=False).history
    checksum = float(sum(np.abs(weight).sum() for weight in model.get_weights()))
    print(json.dumps({"history": history, "checksum": checksum}))
    """
)


def _train(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _TRAIN, mode], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_training_is_the_same_to_the_bit_with_keras_unconverted():
    converted, unconverted = _train("converted"), _train("unconverted")
    assert unconverted == converted
    assert converted["history"]["loss"][1] < converted["history"]["loss"][0]
