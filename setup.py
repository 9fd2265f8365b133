"""parts-jax: PARTS (Predict, Attend, Refine with Transformers and Slots) in JAX/Haiku."""
import setuptools

setuptools.setup(
    name="parts-jax",
    version="0.1.0",
    description="Reference JAX/Haiku implementation of PARTS: unsupervised video segmentation "
                "with slots, top-down attention and a fixed per-frame prior.",
    packages=setuptools.find_packages(include=["parts_jax*", "experiments*", "datasets*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.4.38", "jaxlib>=0.4.38", "dm-haiku", "optax", "chex", "ml-collections",
        "absl-py", "numpy", "tensorflow-datasets", "array_record", "orbax-checkpoint",
        "tensorboardX", "tqdm", "pillow", "matplotlib", "imageio",
    ],
    extras_require={
        "test": ["pytest", "scikit-learn"],
        "room3d": ["mujoco"],
        "clevrer": ["opencv-python-headless"],
    },
)
