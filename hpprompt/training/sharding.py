"""Device mesh and batch sharding: one 'data' axis over every device (of every host).

Code is written once for any device count: inputs are padded to a multiple of the device count and
placed with `NamedSharding(mesh, P('data'))`; `jax.jit` propagates the sharding and inserts the
collectives. On several hosts call `init_distributed` first (the launchers' --coordinator_address,
--num_processes and --process_id flags); the mesh then spans all hosts' devices.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA = "data"


def init_distributed(coordinator_address: str | None, num_processes: int | None,
                     process_id: int | None) -> None:
  """`jax.distributed.initialize` when a coordinator is given (multi-host); no-op otherwise.

  Every process runs the same program with the same flags and seed; inputs that are identical on all
  processes are placed with `shard`/`replicate`, and `to_host` gathers sharded results. On CPU hosts
  the collectives go through gloo.
  """
  if not coordinator_address:
    return
  if num_processes is None or process_id is None:
    raise ValueError("--coordinator_address needs --num_processes and --process_id.")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")   # used by CPU backends only
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1-D mesh ('data',) over the first `num_devices` devices (default: all, all hosts)."""
  devices = jax.devices()
  n = len(devices) if num_devices is None else num_devices
  if not 1 <= n <= len(devices):
    raise ValueError(f"num_devices={num_devices}, but {len(devices)} device(s) are available.")
  return jax.sharding.Mesh(np.asarray(devices[:n]), (DATA,),
                           axis_types=(jax.sharding.AxisType.Auto,))


def data_sharding(mesh: jax.sharding.Mesh, axis: int = 0, ndim: int | None = None) -> NamedSharding:
  spec = [None] * (ndim if ndim is not None else axis + 1)
  spec[axis] = DATA
  return NamedSharding(mesh, P(*spec))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def pad_rows(x: np.ndarray, multiple: int, axis: int = 0, value=0) -> np.ndarray:
  """Pads `axis` of a host array up to a multiple (for even sharding)."""
  pad = (-x.shape[axis]) % multiple
  if pad == 0:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, pad)
  return np.pad(x, widths, constant_values=value)


def shard(tree, mesh: jax.sharding.Mesh, axis: int = 0):
  """Places every array leaf of `tree` sharded along `axis` over the mesh's 'data' axis."""
  return jax.tree.map(lambda x: jax.device_put(
      jnp.asarray(x), data_sharding(mesh, axis, np.ndim(x))), tree)


def replicate(tree, mesh: jax.sharding.Mesh):
  return jax.tree.map(lambda x: jax.device_put(x, replicated(mesh)), tree)


def to_host(x) -> np.ndarray:
  """A (possibly sharded, possibly multi-host) array as a full NumPy array on every process."""
  if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
    return np.asarray(x)
  from jax.experimental import multihost_utils  # noqa: PLC0415
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def is_main_process() -> bool:
  """True on the process that writes files and prints (process 0; always true on one host)."""
  return jax.process_index() == 0


def sync_processes(name: str) -> None:
  """A barrier across processes (no-op on one host)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # noqa: PLC0415
    multihost_utils.sync_global_devices(name)
