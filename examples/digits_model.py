"""A two-input model for your own data, compiled by its builder: the digits of
``examples/digits_data.py``.

With ``--data FILE.py:FUNCTION`` the model comes from ``--model FILE.py:FUNCTION`` (the presets
are Reuters models)::

    trainways train --data examples/digits_data.py:load --model examples/digits_model.py:build \\
        --method loop --epochs 3

A builder for your own data may ask for ``embedding_dim`` and ``dropout`` (``--embedding-dim``,
``--dropout``) and nothing else. It may return the model compiled: trainways keeps that
``compile()`` — its loss, optimizer, metrics — in every method (and refuses ``--lr`` and the
other options ``compile()`` owns); an uncompiled model is compiled as the presets are.
"""

import keras


def build(dropout: float | None = None) -> keras.Model:
    """A small CNN on the 8x8 image beside an MLP on its 16 ink features, by input name."""
    image = keras.Input(shape=(8, 8, 1), name="image")
    features = keras.Input(shape=(16,), name="features")
    seen = keras.layers.Conv2D(16, 3, activation="relu")(image)
    seen = keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(seen))
    summed = keras.layers.Dense(16, activation="relu")(features)
    joined = keras.layers.Concatenate()([seen, summed])
    joined = keras.layers.Dropout(0.2 if dropout is None else dropout, seed=1)(joined)
    outputs = keras.layers.Dense(10, activation="softmax")(joined)
    model = keras.Model({"image": image, "features": features}, outputs, name="digits")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model
