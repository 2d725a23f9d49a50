"""keras_h5.py — Keras models written as the legacy HDF5 weights files Keras distributes.

The official EfficientNetV2 downloads (efficientnetv2-b0.h5 ... -l.h5, _notop) are legacy Keras
HDF5 weights files; kao reads them directly (src/weights_keras.c). The tests and the fuzz seeds
make such files from Keras 3 models with random weights, in both layouts found in the wild:
  write_keras3(f, model)  what Keras 3's legacy writer gives: root attributes layer_names,
                          backend, keras_version; one group per layer with weight_names;
  write_keras2(f, model)  what Keras 2's model.save gave (the official files): everything under
                          a model_weights group, names ending in ':0', depthwise kernels named
                          depthwise_kernel, layer_names split into layer_names0 / layer_names1.
f is an h5py.File open for writing. Run with KERAS_BACKEND=torch (no TensorFlow needed).
"""
import numpy as np


def write_keras3(f, model):
    from keras.src.legacy.saving import legacy_h5_format
    legacy_h5_format.save_weights_to_hdf5_group(f, model)


def write_keras2(f, model):
    import keras
    f.attrs["keras_version"] = b"2.9.0"
    f.attrs["backend"] = b"tensorflow"
    g = f.create_group("model_weights")
    names = np.array([layer.name.encode() for layer in model.layers])
    half = len(names) // 2
    g.attrs["layer_names0"], g.attrs["layer_names1"] = names[:half], names[half:]
    for layer in model.layers:
        lg = g.create_group(layer.name)
        wnames = []
        for w in layer.trainable_weights + layer.non_trainable_weights:
            var = w.path.split("/")[-1]
            if isinstance(layer, keras.layers.DepthwiseConv2D) and var == "kernel":
                var = "depthwise_kernel"
            wnames.append(f"{layer.name}/{var}:0".encode())
            lg.create_dataset(wnames[-1].decode(), data=keras.ops.convert_to_numpy(w))
        lg.attrs["weight_names"] = np.array(wnames)
