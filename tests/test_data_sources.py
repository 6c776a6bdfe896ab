"""prepare_inputs: every input ``Model.fit`` accepts, batched as Keras's own adapters batch it,
in one order for all three methods."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import tree
from keras.src.trainers.data_adapters import get_data_adapter
from keras.src.trainers.data_adapters.array_slicing import train_validation_split
from keras.src.trainers.epoch_iterator import EpochIterator

import trainways
from trainways.data import DataError, OrderedPyDataset, epoch_order, prepare_inputs

N = 20
RNG = np.random.default_rng(0)
IDS = RNG.integers(0, 50, (N, 4)).astype(np.int32)
DENSE = RNG.normal(size=(N, 3))  # float64: fit casts it to float32
LABELS = np.arange(N) % 3
TARGET = RNG.normal(size=(N, 1)).astype(np.float32)


def _canon(batch):
    """A batch as a tuple of NumPy arrays, lists made tuples (as fit unpacks it)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        batch = (batch,)
    return tree.lists_to_tuples(tree.map_structure(np.asarray, batch))


def _assert_same_batches(ours, theirs) -> None:
    ours, theirs = [_canon(b) for b in ours], [_canon(b) for b in theirs]
    assert len(ours) == len(theirs) > 0
    for mine, keras_batch in zip(ours, theirs, strict=True):
        tree.assert_same_structure(mine, keras_batch)
        for a, b in zip(tree.flatten(mine), tree.flatten(keras_batch), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def _keras_batches(x, y=None, **options) -> list:
    adapter = get_data_adapter(x, y, **options)
    return list(adapter.get_numpy_iterator())


def _fit_epochs(epochs: int, **options) -> list[list]:
    """The batches of each epoch as fit's EpochIterator hands them to the train step."""
    iterator = EpochIterator(**options)
    iterator.reset()
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Your input ran out of data"
        for _ in range(epochs):
            batches = []
            with iterator.catch_stop_iteration():
                for _, _, data in iterator:
                    batches.extend(data)
            seen.append(batches)
    return seen


class Batches(keras.utils.PyDataset):
    """Batch ``i`` is rows ``5i..5i+4``; records the indices asked for and the epoch hooks."""

    def __init__(self, batches: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)
        self.batches, self.asked, self.hooks = batches, [], []

    def __len__(self) -> int:
        return self.batches

    def __getitem__(self, index: int):
        self.asked.append(index)
        rows = slice(5 * index, 5 * index + 5)
        return IDS[rows], LABELS[rows]

    def on_epoch_begin(self) -> None:
        self.hooks.append("begin")

    def on_epoch_end(self) -> None:
        self.hooks.append("end")


def test_nested_arrays_batch_as_keras_does() -> None:
    x = {"ids": IDS, "extra": [DENSE, DENSE[:, 0]]}
    y = {"label": LABELS, "target": TARGET}
    weights = np.linspace(0.5, 1.5, N)  # one array for every output, as Keras copies it
    inputs = prepare_inputs(
        x, y, sample_weight=weights, batch_size=8, shuffle=False, tensorflow=True
    )
    theirs = _keras_batches(x, y, sample_weight=weights, batch_size=8)
    _assert_same_batches(inputs.numpy.train, theirs)
    _assert_same_batches(inputs.train, theirs)
    assert (inputs.kind, inputs.resume, inputs.clock, inputs.seed) == (
        "arrays",
        "batch",
        None,
        None,
    )
    assert inputs.fit_train is None and inputs.validation is None


def test_shuffled_arrays_are_keras_batches_of_the_epochs_order() -> None:
    inputs = prepare_inputs(IDS, LABELS, batch_size=6, seed=4, tensorflow=True)
    assert inputs.clock is not None and inputs.steps_per_epoch == 4 and inputs.seed == 4
    for epoch in (0, 3):
        inputs.clock.set_epoch(epoch)
        order = epoch_order(N, 4, epoch)
        theirs = _keras_batches(IDS[order], LABELS[order], batch_size=6)
        _assert_same_batches(inputs.numpy.train, theirs)
        _assert_same_batches(inputs.train, theirs)


def test_unsupervised_batches_are_one_tuples() -> None:
    inputs = prepare_inputs([IDS, DENSE], batch_size=7, shuffle=False, tensorflow=True)
    batches = list(inputs.numpy.train)
    assert all(isinstance(b, tuple) and len(b) == 1 for b in batches)
    _assert_same_batches(batches, _keras_batches([IDS, DENSE], batch_size=7))
    _assert_same_batches(inputs.train, batches)


def test_class_weight_becomes_keras_sample_weights() -> None:
    weights = {0: 1.0, 1: 2.0, 2: 0.5}
    inputs = prepare_inputs(
        IDS, LABELS, class_weight=weights, batch_size=8, shuffle=False, tensorflow=False
    )
    theirs = _keras_batches(IDS, LABELS, class_weight=weights, batch_size=8)
    _assert_same_batches(inputs.numpy.train, theirs)
    assert len(theirs[0]) == 3


def test_sample_weight_per_output_keeps_ys_structure() -> None:
    y = [LABELS, TARGET]
    weights = [np.ones(N), np.linspace(0, 1, N)]
    inputs = prepare_inputs(
        IDS, y, sample_weight=weights, batch_size=8, shuffle=False, tensorflow=False
    )
    _assert_same_batches(
        inputs.numpy.train, _keras_batches(IDS, y, sample_weight=weights, batch_size=8)
    )


def test_validation_split_takes_the_last_rows_before_shuffling() -> None:
    inputs = prepare_inputs(
        IDS, LABELS, validation_split=0.25, batch_size=4, seed=1, tensorflow=True
    )
    (_, _, _), (val_x, val_y, _) = train_validation_split((IDS, LABELS, None), 0.25)
    _assert_same_batches(inputs.numpy.validation, _keras_batches(val_x, val_y, batch_size=4))
    _assert_same_batches(inputs.validation, inputs.numpy.validation)
    trained = np.concatenate([b[1] for b in inputs.numpy.train])
    np.testing.assert_array_equal(trained, LABELS[:15][epoch_order(15, 1, 0)])


def test_validation_data_tuple_with_weights_and_validation_steps() -> None:
    weights = np.linspace(1, 2, N)
    inputs = prepare_inputs(
        IDS,
        LABELS,
        validation_data=(DENSE, LABELS, weights),
        validation_batch_size=6,
        validation_steps=2,
        tensorflow=True,
    )
    theirs = _keras_batches(DENSE, LABELS, sample_weight=weights, batch_size=6)[:2]
    _assert_same_batches(inputs.numpy.validation, theirs)
    _assert_same_batches(inputs.validation, theirs)
    assert inputs.validation_steps == 2 and inputs.fit_validation is None


@pytest.mark.parametrize("shuffle", [False, True])
def test_steps_per_epoch_cuts_passes_into_epochs_as_fit_does(shuffle) -> None:
    # 20 rows, batches of 4: 5 a pass; 2 an epoch makes epochs of 2, 2 and 1 batches.
    inputs = prepare_inputs(
        IDS, LABELS, batch_size=4, steps_per_epoch=2, shuffle=shuffle, seed=2, tensorflow=True
    )
    assert inputs.steps_per_epoch == 2 and inputs.clock is not None

    def ours(epoch: int, batches) -> list:
        inputs.clock.set_epoch(epoch)
        return list(batches)

    if not shuffle:
        expected = _fit_epochs(6, x=IDS, y=LABELS, batch_size=4, steps_per_epoch=2)
        for epoch, batches in enumerate(expected):
            _assert_same_batches(ours(epoch, inputs.numpy.train), batches)
            _assert_same_batches(ours(epoch, inputs.train), batches)
        return
    sizes = [[len(b[1]) for b in ours(epoch, inputs.numpy.train)] for epoch in range(6)]
    assert sizes == [[4, 4], [4, 4], [4]] * 2
    first_pass = np.concatenate([b[1] for e in range(3) for b in ours(e, inputs.numpy.train)])
    np.testing.assert_array_equal(first_pass, LABELS[epoch_order(N, 2, 0)])
    second = np.concatenate([b[1] for b in ours(3, inputs.train)])
    np.testing.assert_array_equal(second, LABELS[epoch_order(N, 2, 1)][:8])


def test_a_drawn_seed_follows_keras_set_random_seed() -> None:
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(11)
        inputs = prepare_inputs(IDS, LABELS, batch_size=8, tensorflow=False)
        runs.append((inputs.seed, np.concatenate([b[1] for b in inputs.numpy.train])))
    assert runs[0][0] == runs[1][0] is not None
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_tf_data_batches_are_keras_adapters_with_class_weight() -> None:
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((IDS, LABELS)).batch(6)
    weights = {0: 1.0, 1: 3.0, 2: 0.5}
    inputs = prepare_inputs(dataset, class_weight=weights, tensorflow=True)
    theirs = _keras_batches(dataset, class_weight=weights)
    _assert_same_batches(inputs.numpy.train, theirs)
    _assert_same_batches(inputs.train, theirs)
    assert (inputs.kind, inputs.resume, inputs.fit_train, inputs.seed) == (
        "tf.data",
        "epoch",
        None,
        None,
    )
    single = prepare_inputs(tf.data.Dataset.from_tensor_slices(IDS).batch(6), tensorflow=True)
    assert isinstance(single.train.element_spec, tuple)  # an x-only dataset yields (x,)


def _generator():
    for start in range(0, N, 8):
        yield IDS[start : start + 8], LABELS[start : start + 8]


def test_generator_batches_and_what_fit_gets() -> None:
    expected = list(_generator())
    inputs = prepare_inputs(_generator(), steps_per_epoch=3, tensorflow=False)
    assert (inputs.kind, inputs.resume, inputs.steps_per_epoch) == ("generator", "epoch", 3)
    # Keras took the first batches to learn their shapes; fit is given them back first.
    _assert_same_batches(inputs.fit_train, expected)
    _assert_same_batches(prepare_inputs(_generator(), tensorflow=False).numpy.train, expected)
    _assert_same_batches(prepare_inputs(_generator(), tensorflow=True).train, expected)


def test_torch_dataloader_batches_are_keras_adapters() -> None:
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(IDS), torch.tensor(LABELS)), batch_size=6
    )
    inputs = prepare_inputs(loader, shuffle=True, tensorflow=True)
    theirs = _keras_batches(loader)
    _assert_same_batches(inputs.numpy.train, theirs)
    _assert_same_batches(inputs.train, theirs)
    assert inputs.fit_train is loader and (inputs.kind, inputs.resume, inputs.seed) == (
        "torch",
        "epoch",
        None,
    )


def test_pydataset_unshuffled_is_keras_adapters_batches() -> None:
    dataset = Batches()
    inputs = prepare_inputs(dataset, shuffle=False, validation_data=Batches(2), tensorflow=True)
    theirs = _keras_batches(Batches())
    _assert_same_batches(inputs.numpy.train, theirs)
    _assert_same_batches(inputs.train, theirs)
    _assert_same_batches(inputs.numpy.validation, _keras_batches(Batches(2)))
    assert inputs.clock is None and inputs.seed is None and inputs.resume == "batch"
    assert isinstance(inputs.fit_train, OrderedPyDataset)


def test_shuffled_pydataset_visits_each_epochs_order_and_forwards_hooks() -> None:
    dataset = Batches()
    weights = {0: 1.0, 1: 2.0, 2: 3.0}
    inputs = prepare_inputs(dataset, seed=5, class_weight=weights, tensorflow=True)
    assert inputs.clock is not None and inputs.steps_per_epoch == 4 and inputs.seed == 5
    for epoch in (0, 1, 7):
        inputs.clock.set_epoch(epoch)
        dataset.asked.clear()
        dataset.hooks.clear()
        batches = list(inputs.numpy.train)
        assert dataset.asked == epoch_order(4, 5, epoch).tolist()
        assert dataset.hooks == ["begin", "end"]  # one pass, one epoch
        theirs = _keras_batches(Batches(), class_weight=weights)  # weighted by Keras
        _assert_same_batches(batches, [theirs[i] for i in epoch_order(4, 5, epoch)])
        _assert_same_batches(inputs.train, batches)
    wrapper = inputs.fit_train
    dataset.hooks.clear()
    wrapper.on_epoch_begin()
    wrapper.on_epoch_end()
    assert dataset.hooks == ["begin", "end"]


def test_fit_on_the_wrapper_trains_on_numpy_trains_batches() -> None:
    class Recorder(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(1)
            self.seen: list[np.ndarray] = []

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            self.seen.append(np.asarray(data[0]))
            return {"batches": len(self.seen)}

    dataset = Batches()
    inputs = prepare_inputs(dataset, seed=9, tensorflow=True)
    model = Recorder()
    model.compile(run_eagerly=True)
    clock = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, _: inputs.clock.set_epoch(e))
    model.fit(inputs.fit_train, epochs=2, shuffle=False, callbacks=[clock], verbose=0)
    expected = []
    for epoch in (0, 1):
        inputs.clock.set_epoch(epoch)
        expected += [b[0] for b in inputs.numpy.train]
    assert len(model.seen) == len(expected) == 8
    for seen, batch in zip(model.seen, expected, strict=True):
        np.testing.assert_array_equal(seen, batch)
    assert dataset.hooks.count("end") >= 2  # fit's epoch ends reach the user's dataset


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("data", "options", "needle"),
    [
        ("arrays", {"y": LABELS[:5]}, r"row counts differ \(x has 20, y has 5\)"),
        ("nested", {"y": LABELS}, r"x\['b'\] has 3"),
        ("pydataset", {"y": LABELS}, "pass y=None"),
        ("pydataset", {"sample_weight": LABELS}, "pass sample_weight=None"),
        ("pydataset", {"batch_size": 8}, "pass batch_size=None"),
        ("generator", {"validation_split": 0.2}, "pass validation_data instead"),
        ("generator", {"class_weight": {0: 1.0}}, "class_weight. is not supported"),
        (
            "arrays",
            {"y": LABELS, "sample_weight": LABELS, "class_weight": {0: 1.0}},
            "pass one of them",
        ),
        ("arrays", {"y": [LABELS, LABELS], "class_weight": {0: 1.0}}, "one array per output"),
        ("arrays", {"y": LABELS, "validation_split": 1.5}, r"must be in \(0, 1\)"),
        ("arrays", {"y": LABELS, "seed": -1}, r"seed must be in \[0, 2\*\*31\)"),
        ("arrays", {"y": LABELS, "shuffle": "batch"}, "shuffle must be True or False"),
        (
            "arrays",
            {"y": LABELS, "validation_data": (IDS, LABELS, LABELS, LABELS)},
            "tuple of 4",
        ),
        ("pydataset", {"steps_per_epoch": 2}, "steps_per_epoch=2 splits each shuffled pass"),
        (
            "pydataset",
            {"validation_data": Batches(), "validation_batch_size": 4},
            "pass batch_size=None",
        ),
        ("object", {}, "not data Model.fit accepts"),
    ],
)
def test_refusals_are_one_line_data_errors(data, options, needle) -> None:
    x = {
        "arrays": IDS,
        "nested": {"a": IDS, "b": IDS[:3]},
        "pydataset": Batches(),
        "generator": _generator(),
        "object": object(),
    }[data]
    with pytest.raises(DataError, match=needle) as error:
        prepare_inputs(x, **options, tensorflow=False)
    _one_line(error)


def test_without_tensorflow_jax_never_imports_it() -> None:
    code = """
import json, sys
import keras, numpy as np
from trainways.data import prepare_inputs

class Batches(keras.utils.PyDataset):
    def __init__(self):
        super().__init__()
    def __len__(self):
        return 3
    def __getitem__(self, i):
        return np.ones((2, 3), "float32"), np.zeros(2)

np.random.seed(11)  # as keras.utils.set_random_seed does (which also imports TensorFlow)
arrays = prepare_inputs({"a": np.ones((9, 2)), "b": [np.zeros(9)]}, np.arange(9),
                        validation_split=0.3, tensorflow=False)
pydataset = prepare_inputs(Batches(), validation_data=Batches(), tensorflow=False)
count = sum(1 for _ in arrays.numpy.train) + sum(1 for _ in pydataset.numpy.train)
count += sum(1 for _ in pydataset.numpy.validation)
assert arrays.train is None and pydataset.train is None
print(json.dumps({"tensorflow": "tensorflow" in sys.modules, "seed": arrays.seed,
                  "batches": count, "backend": keras.backend.backend()}))
"""
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "PYTHONPATH": str(Path(trainways.__file__).resolve().parents[1]),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax" and report["tensorflow"] is False
    assert report["batches"] == 1 + 3 + 3
    # The same seed as a TensorFlow process seeded alike: drawn from NumPy's global generator.
    keras.utils.set_random_seed(11)
    assert report["seed"] == prepare_inputs(np.ones((9, 2)), np.arange(9), tensorflow=False).seed


def test_numpy_passes_of_a_generator_replay_its_first_batches_as_keras_does() -> None:
    # Keras peeks at a generator's first batches (their shapes) and gives them back every pass.
    inputs = prepare_inputs(_generator(), tensorflow=False)
    adapter = get_data_adapter(_generator())
    for _ in range(2):
        _assert_same_batches(inputs.numpy.train, list(adapter.get_numpy_iterator()))
