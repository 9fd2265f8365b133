"""room3d: a Playroom-like 3D stand-in rendered headless with MuJoCo.

The PARTS paper's "Playroom" (a Unity room with an agent moving a camera) was
never released. room3d is a small, fully procedural replacement:

* a square room (textured floor, four walls with distinct colours) holding
  `min_objects..max_objects` primitives (box, sphere, cylinder, capsule) with
  random colours, sizes and positions, dropped from a small height with random
  initial velocities, so they fall, slide, roll and collide (MuJoCo physics);
* a camera (the "agent") that walks and turns according to smooth random
  actions, always inside the room (ego-motion and parallax);
* RGB frames and per-pixel object ids from MuJoCo's own segmentation rendering.

Episode (see `datasets.base`):
  video:         [T, H, W, 3] uint8.
  actions:       [T, 3] float32, actions[t] = (forward, left, turn) moves the
                 camera between frame t and frame t+1, in the camera's frame at
                 time t: first translate `forward` metres along the viewing
                 direction and `left` metres to its left (both horizontal),
                 then turn `turn` radians counter-clockwise seen from above
                 (positive = turn left, which shifts image content to the
                 right). These are the *effective* motions (after keeping the
                 camera inside the room). actions[T-1] is sampled but unused.
  segmentations: [T, H, W] int32, 0 = floor/walls/sky, 1..N = the objects in
                 scene order.

Determinism: episode `index` of `split` is a pure function of
(seed, split, index) and the config (random access; train and eval use
different random streams, so they are disjoint).

Rendering is headless through EGL (MUJOCO_GL=egl unless already set). One GL
context is kept per process (and thread); each scene gets a fresh MjModel and
MjrContext. Do not fork a process after it has rendered (Mesa's EGL then
hangs in the child); the cache build below uses spawned workers.

Config keys (`data_config`): image_size, num_frames, num_train, num_eval, seed,
min_objects, max_objects, and optionally
  frame_dt        simulated seconds between frames (default 0.1);
  cache           (default True) render each split once into the array_record
                  cache (`datasets.cache.build_cached`) under data_dir (default
                  `cache.default_data_dir()`) and read it back from there;
  render_workers  processes rendering the cache (default: CPUs, at most 8).

Throughput (64x64, T=16, llvmpipe software GL): ~10 episodes/s per process.

Montage for the docs:
  python -m datasets.room3d --montage docs/room3d_montage.png
"""
import dataclasses
import functools
import os
import threading
from typing import List, Optional, Sequence, Tuple

import numpy as np

from datasets import base
from datasets import montage
from datasets import sources

#: Bump when the generator's output changes: it is part of the cache key.
VERSION = 1
KINDS = ("box", "sphere", "cylinder", "capsule")
ROOM_HALF = 2.5  # The room spans [-2.5, 2.5]^2 metres.
WALL_HEIGHT = 1.8
OBJECT_RADIUS = 1.0  # Objects start within this distance of the room centre.
CAMERA_RING = (1.6, 2.2)  # The camera stays at this distance from the centre.
FOVY = 60.0
_SPLITS = base.SPLIT_IDS

_EGL_HELP = (
    "room3d renders headless through EGL (MUJOCO_GL=egl, the default here): "
    "it needs libEGL.so.1 and a Mesa or NVIDIA driver (Debian/Ubuntu: `apt-get "
    "install libegl1 libgl1-mesa-dri`) and PyOpenGL (`pip install pyopengl`); "
    "with MUJOCO_GL=osmesa it needs libOSMesa (`apt-get install libosmesa6`) "
    "instead. Or use data.name='sprites', which needs no GL.")


@dataclasses.dataclass
class Primitive:
  """One object: a MuJoCo primitive on its own free body."""
  kind: str  # One of KINDS.
  size: Tuple[float, ...]  # MuJoCo geom size (half-sizes / radius, half-length).
  pos: Tuple[float, float, float]  # Initial centre, metres.
  yaw: float  # Initial rotation about z, radians.
  rgba: Tuple[float, float, float, float]
  velocity: Tuple[float, float, float] = (0.0, 0.0, 0.0)  # Initial, m/s.


@dataclasses.dataclass
class Scene:
  """Everything needed to simulate and render one episode."""
  objects: List[Primitive]
  camera_poses: np.ndarray  # [T, 3] (x, y, yaw) per frame.
  actions: np.ndarray  # [T, 3] float32 (forward, left, turn).
  camera_height: float = 1.1  # Metres.
  camera_pitch: float = -25.0  # Degrees, negative looks down.
  floor_rgb: Tuple[Tuple[float, ...], Tuple[float, ...]] = ((.55, .5, .45),
                                                             (.45, .4, .35))
  wall_rgb: Tuple[Tuple[float, ...], ...] = ((.8, .3, .3), (.3, .7, .3),
                                             (.3, .4, .8), (.8, .75, .3))
  frame_dt: float = 0.1


# ----------------------------------------------------------------------------
# Sampling (pure NumPy).


def _object_radius(kind: str, size: Sequence[float]) -> float:
  """Horizontal bounding radius of a primitive standing upright."""
  if kind == "box":
    return float(np.hypot(size[0], size[1]))
  return float(size[0])


def _object_half_height(kind: str, size: Sequence[float]) -> float:
  if kind == "box":
    return size[2]
  if kind == "sphere":
    return size[0]
  if kind == "cylinder":
    return size[1]
  return size[0] + size[1]  # Capsule: radius + half-length.


def _hsv_to_rgb(hue: float, sat: float, val: float) -> Tuple[float, ...]:
  k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
  rgb = val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
  return tuple(float(c) for c in rgb)


def sample_objects(rng: np.random.Generator, num: int) -> List[Primitive]:
  """Non-overlapping random primitives near the room centre."""
  objects, placed = [], []
  # Well separated hues (evenly spread, random offset, shuffled), saturated.
  hues = (rng.uniform() + (rng.permutation(num)
                           + rng.uniform(-0.2, 0.2, num)) / max(num, 1)) % 1.0
  for hue in hues:
    kind = KINDS[rng.integers(len(KINDS))]
    if kind == "box":
      size = tuple(rng.uniform(0.1, 0.22, size=3))
    elif kind == "sphere":
      size = (rng.uniform(0.12, 0.22),)
    else:  # Cylinder or capsule: radius, half-length.
      size = (rng.uniform(0.08, 0.16), rng.uniform(0.1, 0.22))
    radius = _object_radius(kind, size)
    for _ in range(100):  # Rejection sampling of a free spot.
      r = OBJECT_RADIUS * np.sqrt(rng.uniform())
      phi = rng.uniform(0, 2 * np.pi)
      xy = np.array([r * np.cos(phi), r * np.sin(phi)])
      if all(np.linalg.norm(xy - p) > radius + q + 0.05 for p, q in placed):
        break
    placed.append((xy, radius))
    z = _object_half_height(kind, size) + rng.uniform(0.05, 0.4)
    speed = rng.uniform(0.0, 0.6)
    heading = rng.uniform(0, 2 * np.pi)
    objects.append(Primitive(
        kind=kind, size=tuple(float(s) for s in size),
        pos=(float(xy[0]), float(xy[1]), float(z)),
        yaw=float(rng.uniform(0, 2 * np.pi)),
        rgba=_hsv_to_rgb(hue, rng.uniform(0.6, 0.95),
                         rng.uniform(0.7, 1.0)) + (1.0,),
        velocity=(float(speed * np.cos(heading)), float(speed * np.sin(heading)),
                  0.0)))
  return objects


def apply_action(pose: np.ndarray, action: np.ndarray) -> np.ndarray:
  """Camera pose (x, y, yaw) after `action` = (forward, left, turn)."""
  x, y, yaw = pose
  forward, left, turn = action
  return np.array([x + forward * np.cos(yaw) - left * np.sin(yaw),
                   y + forward * np.sin(yaw) + left * np.cos(yaw),
                   yaw + turn])


def _wrap(angle):
  return (angle + np.pi) % (2 * np.pi) - np.pi


def sample_camera_path(rng: np.random.Generator,
                       num_frames: int) -> Tuple[np.ndarray, np.ndarray]:
  """Smooth random walk of the camera on a ring around the objects.

  Returns:
    poses: [T, 3] (x, y, yaw) per frame.
    actions: [T, 3] float32 effective (forward, left, turn); poses[t + 1] ==
      apply_action(poses[t], actions[t]).
  """
  r = rng.uniform(*CAMERA_RING)
  phi = rng.uniform(0, 2 * np.pi)
  pose = np.array([r * np.cos(phi), r * np.sin(phi),
                   phi + np.pi + rng.uniform(-0.4, 0.4)])  # Roughly inwards.
  sigma = np.array([0.08, 0.08, 0.06])  # m, m, rad per frame.
  rho = 0.8  # AR(1) smoothing of the actions.
  noise = rng.normal(size=3) * sigma
  poses, actions = [pose], []
  for _ in range(num_frames):
    noise = rho * noise + np.sqrt(1 - rho**2) * rng.normal(size=3) * sigma
    # Steer gently back towards the room centre to keep objects in view.
    to_centre = _wrap(np.arctan2(-pose[1], -pose[0]) - pose[2])
    wanted = noise + np.array([0.0, 0.0, 0.3 * to_centre])
    nxt = apply_action(pose, wanted)
    # Keep the camera on the ring (inside the room, outside the objects).
    dist = np.hypot(nxt[0], nxt[1])
    nxt[:2] *= np.clip(dist, *CAMERA_RING) / max(dist, 1e-6)
    delta = nxt[:2] - pose[:2]
    c, s = np.cos(pose[2]), np.sin(pose[2])
    actions.append([c * delta[0] + s * delta[1], -s * delta[0] + c * delta[1],
                    wanted[2]])
    pose = nxt
    poses.append(pose)
  return np.array(poses[:num_frames]), np.array(actions, np.float32)


def sample_scene(rng: np.random.Generator, num_frames: int, min_objects: int,
                 max_objects: int, frame_dt: float = 0.1) -> Scene:
  """A random room, objects and camera path."""
  num = int(rng.integers(min_objects, max_objects + 1))
  objects = sample_objects(rng, num)
  poses, actions = sample_camera_path(rng, num_frames)
  tint = rng.uniform(0.8, 1.0, size=3)
  floor = tuple(tuple(float(v) for v in tint * b) for b in ((.6, .55, .5),
                                                            (.45, .42, .38)))
  hues = rng.permutation(6)[:4] / 6 + rng.uniform(0, 1 / 6)
  walls = tuple(_hsv_to_rgb(h, 0.45, 0.85) for h in hues)  # Pastel walls.
  return Scene(objects=objects, camera_poses=poses, actions=actions,
               camera_height=float(rng.uniform(0.9, 1.3)),
               camera_pitch=float(rng.uniform(-30.0, -18.0)),
               floor_rgb=floor, wall_rgb=walls, frame_dt=frame_dt)


# ----------------------------------------------------------------------------
# MuJoCo model.


def _fmt(values) -> str:
  return " ".join(f"{float(v):.6g}" for v in values)


def scene_xml(scene: Scene, image_size: int) -> str:
  """MJCF for the room and objects; object geoms are named obj1..objN."""
  walls = []
  thickness = 0.05
  for i, (x, y, sx, sy) in enumerate((
      (ROOM_HALF + thickness, 0, thickness, ROOM_HALF),
      (0, ROOM_HALF + thickness, ROOM_HALF, thickness),
      (-ROOM_HALF - thickness, 0, thickness, ROOM_HALF),
      (0, -ROOM_HALF - thickness, ROOM_HALF, thickness))):
    walls.append(
        f'<geom name="wall{i}" type="box" material="wall{i}" '
        f'pos="{x} {y} {WALL_HEIGHT / 2}" '
        f'size="{sx} {sy} {WALL_HEIGHT / 2}"/>')
  wall_materials = "".join(
      f'<material name="wall{i}" texture="wall" texrepeat="4 2" '
      f'texuniform="false" rgba="{_fmt(rgb)} 1"/>'
      for i, rgb in enumerate(scene.wall_rgb))
  bodies = []
  for i, obj in enumerate(scene.objects):
    c, s = np.cos(obj.yaw / 2), np.sin(obj.yaw / 2)
    bodies.append(
        f'<body pos="{_fmt(obj.pos)}" quat="{c:.6g} 0 0 {s:.6g}">'
        f'<freejoint/><geom name="obj{i + 1}" type="{obj.kind}" '
        f'size="{_fmt(obj.size)}" rgba="{_fmt(obj.rgba)}" material="obj" '
        f'condim="6" friction="0.8 0.01 0.002" density="500"/></body>')
  return f"""
<mujoco model="room3d">
  <option timestep="0.005"/>
  <visual>
    <quality shadowsize="512"/>
    <global offwidth="{image_size}" offheight="{image_size}" fovy="{FOVY}"/>
    <headlight ambient=".4 .4 .4" diffuse=".4 .4 .4" specular="0 0 0"/>
    <map znear="0.01" zfar="50"/>
  </visual>
  <asset>
    <texture name="floor" type="2d" builtin="checker" width="64" height="64"
      rgb1="{_fmt(scene.floor_rgb[0])}" rgb2="{_fmt(scene.floor_rgb[1])}"/>
    <material name="floor" texture="floor" texrepeat="6 6"/>
    <texture name="wall" type="2d" builtin="checker" width="64" height="64"
      rgb1="1 1 1" rgb2=".75 .75 .75"/>
    {wall_materials}
    <material name="obj" specular=".3" shininess=".5"/>
    <texture name="sky" type="skybox" builtin="gradient" width="32"
      height="32" rgb1=".8 .85 .9" rgb2=".4 .5 .6"/>
  </asset>
  <worldbody>
    <light pos="0 0 {WALL_HEIGHT + 1.5}" dir="0 0 -1" directional="false"
      diffuse=".6 .6 .6" castshadow="true" cutoff="70"/>
    <geom name="floor" type="plane" size="{ROOM_HALF} {ROOM_HALF} .1"
      material="floor"/>
    {"".join(walls)}
    {"".join(bodies)}
  </worldbody>
</mujoco>"""


# ----------------------------------------------------------------------------
# Rendering.

_LOCAL = threading.local()


def _gl_error(e: Exception) -> base.DataError:
  return base.DataError(f"{_EGL_HELP} (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}"
                        f": {type(e).__name__}: {e})")


def _mujoco():
  """Imports mujoco with a headless GL backend."""
  os.environ.setdefault("MUJOCO_GL", "egl")
  try:
    import mujoco  # pylint: disable=g-import-not-at-top
  except ModuleNotFoundError as e:
    if e.name != "mujoco":
      raise _gl_error(e) from e
    raise base.DataError(
        f"room3d needs the `mujoco` package: pip install mujoco ({e})") from e
  except Exception as e:  # pylint: disable=broad-except
    raise _gl_error(e) from e  # mujoco imports its GL backend eagerly.
  return mujoco


def _gl_context():
  """One GL context per process and thread, created on first use."""
  mujoco = _mujoco()
  ctx = getattr(_LOCAL, "ctx", None)
  if ctx is None or _LOCAL.pid != os.getpid():  # Not the parent's after fork.
    try:
      ctx = mujoco.GLContext(64, 64)
      ctx.make_current()
    except Exception as e:  # pylint: disable=broad-except
      raise _gl_error(e) from e
    _LOCAL.ctx, _LOCAL.pid = ctx, os.getpid()
  ctx.make_current()
  return ctx


def render_scene(scene: Scene, image_size: int,
                 num_frames: Optional[int] = None) -> base.Episode:
  """Simulates `scene` and renders `num_frames` frames (default: all poses)."""
  mujoco = _mujoco()
  num_frames = num_frames or len(scene.camera_poses)
  _gl_context()
  model = mujoco.MjModel.from_xml_string(scene_xml(scene, image_size))
  data = mujoco.MjData(model)
  # Object id per geom id: 0 for floor and walls, 1..N for the objects.
  geom_to_obj = np.zeros(model.ngeom + 1, np.int32)  # Last entry: "no geom".
  for i, obj in enumerate(scene.objects):
    geom = model.geom(f"obj{i + 1}").id
    geom_to_obj[geom] = i + 1
    dof = model.jnt_dofadr[model.body_jntadr[model.geom_bodyid[geom]]]
    data.qvel[dof:dof + 3] = obj.velocity  # Linear part of the free joint.
  substeps = max(1, int(round(scene.frame_dt / model.opt.timestep)))

  try:
    mjr = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50)
  except Exception as e:  # pylint: disable=broad-except
    raise _gl_error(e) from e  # E.g. a GL context that never came up.
  try:
    mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, mjr)
    mjv_scene = mujoco.MjvScene(model, maxgeom=100)
    option = mujoco.MjvOption()
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    rect = mujoco.MjrRect(0, 0, image_size, image_size)
    video = np.empty((num_frames, image_size, image_size, 3), np.uint8)
    segmentations = np.empty((num_frames, image_size, image_size), np.int32)
    rgb = np.empty((image_size, image_size, 3), np.uint8)
    mujoco.mj_forward(model, data)
    for t in range(num_frames):
      if t > 0:
        mujoco.mj_step(model, data, nstep=substeps)
      x, y, yaw = scene.camera_poses[t]
      # Free camera: position = lookat - distance * viewing direction.
      camera.azimuth = np.degrees(yaw)
      camera.elevation = scene.camera_pitch
      camera.distance = 1.0
      pitch = np.radians(scene.camera_pitch)
      camera.lookat[:] = (x + np.cos(pitch) * np.cos(yaw),
                          y + np.cos(pitch) * np.sin(yaw),
                          scene.camera_height + np.sin(pitch))
      mujoco.mjv_updateScene(model, data, option, None, camera,
                             mujoco.mjtCatBit.mjCAT_ALL, mjv_scene)
      mujoco.mjr_render(rect, mjv_scene, mjr)
      mujoco.mjr_readPixels(rgb, None, rect, mjr)
      video[t] = rgb[::-1]
      # Segmentation pass: each geom drawn in a flat colour encoding segid+1.
      mjv_scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
      mjv_scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
      mujoco.mjr_render(rect, mjv_scene, mjr)
      mjv_scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = False
      mjv_scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = False
      mujoco.mjr_readPixels(rgb, None, rect, mjr)
      segid = rgb[::-1].astype(np.int32) @ np.array([1, 256, 65536], np.int32)
      segid_to_geom = np.full(mjv_scene.ngeom + 1, model.ngeom, np.int32)
      for g in mjv_scene.geoms[:mjv_scene.ngeom]:
        if g.segid >= 0 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM:
          segid_to_geom[g.segid + 1] = g.objid
      segmentations[t] = geom_to_obj[segid_to_geom[segid]]
  finally:
    mjr.free()
  return {"video": video, "actions": scene.actions[:num_frames].copy(),
          "segmentations": segmentations}


def episode_scene(seed: int, split: str, index: int, num_frames: int = 16,
                  min_objects: int = 3, max_objects: int = 6,
                  frame_dt: float = 0.1) -> Scene:
  """The scene of episode `index` of `split` (a pure function of the args)."""
  base.check_split(split, "room3d")
  if not 0 <= min_objects <= max_objects:
    raise base.DataError(f"room3d needs 0 <= min_objects <= max_objects, got "
                         f"{min_objects}..{max_objects}")
  rng = np.random.default_rng([seed, _SPLITS[split], index])
  return sample_scene(rng, num_frames, min_objects, max_objects, frame_dt)


def generate_episode(seed: int, split: str, index: int, image_size: int = 64,
                     num_frames: int = 16, min_objects: int = 3,
                     max_objects: int = 6, frame_dt: float = 0.1
                     ) -> base.Episode:
  """Episode `index` of `split`: a pure function of the arguments."""
  scene = episode_scene(seed, split, index, num_frames, min_objects,
                        max_objects, frame_dt)
  return render_scene(scene, image_size)


# ----------------------------------------------------------------------------
# Episode source.


def episode_params(data_config) -> dict:
  """The generator keyword arguments from a data config (all with defaults)."""
  get = data_config.get
  return dict(image_size=int(get("image_size", 64)),
              num_frames=int(get("num_frames", 16)),
              min_objects=int(get("min_objects", 3)),
              max_objects=int(get("max_objects", 6)),
              frame_dt=float(get("frame_dt", 0.1)))


class Room3DSource(sources.GeneratedSource):
  """Generates room3d episodes on the fly (in memory, random access)."""

  action_dim = 3

  def __init__(self, split: str, num_episodes: int, *, seed: int = 0,
               **params):
    base.check_split(split, "room3d")
    self.split, self.seed, self.params = split, int(seed), params
    super().__init__(
        functools.partial(generate_episode, self.seed, split, **params),
        num_episodes, f"room3d(seed={seed}, split={split})")


def _render_index(args) -> base.Episode:
  seed, split, index, params = args
  return generate_episode(seed, split, index, **params)


class _ParallelRenderer:
  """make_episode(index) that renders ahead in `workers` spawned processes.

  Keeps a window of pending indices after the last request; a jump elsewhere
  (e.g. a resumed cache build) restarts the window there. Spawned (not forked)
  workers: forking a process that holds an EGL context can hang.
  """

  def __init__(self, source: "Room3DSource", workers: int):
    self._source, self._workers = source, workers
    self._pool, self._pending = None, {}

  def __call__(self, index: int) -> base.Episode:
    if self._pool is None:
      import multiprocessing  # pylint: disable=g-import-not-at-top
      self._pool = multiprocessing.get_context("spawn").Pool(self._workers)
    if index not in self._pending:
      self._pending = {}
    src = self._source
    for j in range(index, min(index + 4 * self._workers, len(src))):
      if j not in self._pending:
        self._pending[j] = self._pool.apply_async(
            _render_index, ((src.seed, src.split, j, src.params),))
    return self._pending.pop(index).get()

  def close(self):
    if self._pool is not None:
      self._pool.terminate()
      self._pool = None


def build_source(data_config, split: str) -> base.EpisodeSource:
  """room3d episodes for `split` ("train" or "eval").

  With data.cache (default True) the split is rendered once into the
  array_record cache under data.data_dir (default: cache.default_data_dir()),
  by data.render_workers processes (default: the number of CPUs, at most 8),
  and read back from there; otherwise episodes are rendered on demand in the
  calling process.
  """
  base.check_split(split, "room3d")
  seed = int(data_config.get("seed", 0))
  num = int(data_config.num_train if split == "train" else data_config.num_eval)
  params = episode_params(data_config)
  source = Room3DSource(split, num, seed=seed, **params)
  if not data_config.get("cache", True):
    return source
  from datasets import cache  # pylint: disable=g-import-not-at-top
  workers = int(data_config.get("render_workers", 0) or
                min(os.cpu_count() or 1, 8))
  make = _ParallelRenderer(source, workers) if workers > 1 else None
  try:
    path = cache.build_cached(
        "room3d", dict(version=VERSION, seed=seed, **params),
        lambda split_id, index: (make or source.__getitem__)(index), num,
        data_dir=data_config.get("data_dir") or None, split=split)
  finally:
    if make is not None:
      make.close()
  return cache.CachedSource(path)


def main(argv=None):
  montage.main(__doc__.splitlines()[0], "docs/room3d_montage.png", 16,
               lambda seed, i, **kw: generate_episode(seed, "train", i, **kw),
               every=2, argv=argv)

if __name__ == "__main__":
  main()
