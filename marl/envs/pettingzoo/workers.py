"""Our shared-memory worker pool: ``k`` subprocesses step contiguous chunks of the B envs.

Each worker (``spawn``) builds its envs, wraps them in an :class:`EnvGroup` over its rows
of the shared buffers and writes its outputs straight into shared memory; a step costs
one tiny message per worker, starting the workers about a second. Episode statistics
from ``infos`` (keys found as episodes end) do not fit fixed shared arrays: a worker
sends them with its reply to that step, and the pool writes them into its
``VecBuffers.episode``. :class:`WorkerPool`
has the interface of :class:`EnvGroup` (``buf``, ``reset``, ``step``, ``snapshot``,
``restore``, ``close``), so the vec env does not care which it drives.

Why ours and not a library's. SuperSuit's vector machinery (``pettingzoo_env_to_vec_env_v1``
+ ``concat_vec_envs_v1``, shared-memory ``ProcConcatVec`` workers) is the library option
for PettingZoo envs (gymnasium's ``AsyncVectorEnv`` only takes gymnasium envs, which is
what SuperSuit feeds it). Measured with ``experiments/pettingzoo/bench_workers.py
--steps 150`` at equal settings (same wrapped env as conf/env, random actions, B envs,
same process count; 2 vCPUs shared with other jobs, so +-30% noise), env steps/s::

    env         B  procs   ours  SuperSuit
    mpe_spread  8    0     2705   1955
    mpe_spread  8    2     2269   1238
    mpe_spread 16    0     2306   1811
    mpe_spread 16    2     1988   1078
    pistonball  8    0       36     17
    pistonball  8    2       25     32
    pistonball 16    0       14     11
    pistonball 16    2       17     15

On simple_spread, where the machinery's own cost shows, ours is 1.3-1.8x faster; on
pistonball the env's own cost dominates and the two are within the noise (SuperSuit
led once, 32 vs 25 at B=8 with 2 processes; an earlier run of that row gave 61 vs 18).
So the library does not serve at equal speed, and it would cost features: it flattens
agents into env slots, drops ``state()``, needs ``black_death`` for agent death (and then
hides who is alive) and carries no action masks, final observations or ``final_alive``
in its shared memory. So the pool stays.
On 2 cores neither gains from workers; they pay off with idle cores and slow envs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing as mp
import pickle
import traceback
import weakref
from typing import Any

import numpy as np

from marl.envs.base import EnvSpec, VecBuffers
from marl.envs.configs import PettingZooEnvConfig
from marl.envs.pettingzoo.group import EnvGroup, write_episode_stats
from marl.envs.pettingzoo.layout import Layout
from marl.envs.pettingzoo.resolve import build_env

_ALIGN = 64
_FIELDS = tuple(f.name for f in dataclasses.fields(VecBuffers) if f.name != "episode")


def _views(raw: Any, layout: dict[str, tuple]) -> dict[str, np.ndarray]:
    """name -> numpy view of the shared block ``raw`` for (shape, dtype, byte offset)."""
    mem = np.frombuffer(raw, dtype=np.uint8)
    out = {}
    for name, (shape, dtype, off) in layout.items():
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        out[name] = mem[off : off + nbytes].view(dtype).reshape(shape)
    return out


def _buffers(v: dict[str, np.ndarray], sl: slice = slice(None)) -> VecBuffers:
    return VecBuffers(**{k: v[k][sl] for k in _FIELDS})


def _worker_main(conn, raw, mem_layout, cfg, env_layout, lo, hi) -> None:  # pragma: no cover
    """Subprocess: step envs ``lo..hi-1`` on command, writing into shared memory."""
    group = None
    try:
        v = _views(raw, mem_layout)
        envs = [build_env(cfg) for _ in range(hi - lo)]
        group = EnvGroup(envs, env_layout, _buffers(v, slice(lo, hi)))
        actions = v["actions"][lo:hi]
        conn.send_bytes(b"ok")
        while True:
            msg = conn.recv()
            try:
                if msg == "step":
                    group.step(actions)
                    if any(group.ended_stats.values()):  # episode statistics from infos
                        conn.send_bytes(b"I" + pickle.dumps(group.ended_stats))
                        continue
                elif isinstance(msg, tuple) and msg[0] == "reset":
                    group.reset(msg[1])
                elif msg == "snapshot":
                    conn.send_bytes(b"S" + pickle.dumps(group.snapshot()))
                    continue
                elif isinstance(msg, tuple) and msg[0] == "restore":
                    group.restore(msg[1])
                elif msg == "close":
                    group.close()
                    group = None
                    conn.send_bytes(b"ok")
                    return
                conn.send_bytes(b"ok")
            except Exception:
                conn.send_bytes(b"E" + traceback.format_exc().encode())
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    except Exception:
        with contextlib.suppress(Exception):
            conn.send_bytes(b"E" + traceback.format_exc().encode())
    finally:
        if group is not None:
            group.close()


def _shutdown(procs: list, conns: list) -> None:
    for c in conns:
        with contextlib.suppress(Exception):
            c.send("close")
    for c in conns:
        try:
            if c.poll(5):
                c.recv_bytes()
        except Exception:
            pass
        with contextlib.suppress(Exception):
            c.close()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)


class WorkerPool:
    """``num_workers`` processes stepping ``num_envs`` envs of ``cfg`` into shared memory.

    Raises RuntimeError naming the worker and its envs, with the worker's traceback, when
    one fails or dies.
    """

    def __init__(self, cfg: PettingZooEnvConfig, layout: Layout, spec: EnvSpec,
                 num_envs: int, num_workers: int) -> None:
        ctx = mp.get_context("spawn")
        init = VecBuffers.allocate(spec, num_envs)  # shapes, dtypes and initial values
        arrays = {k: getattr(init, k) for k in _FIELDS}
        arrays["actions"] = np.zeros((num_envs, spec.n_agents), np.int64)
        mem_layout, off = {}, 0
        for name, arr in arrays.items():
            mem_layout[name] = (arr.shape, arr.dtype.str, off)
            off += -(-arr.nbytes // _ALIGN) * _ALIGN
        self._raw = raw = ctx.RawArray("B", max(off, _ALIGN))
        v = _views(raw, mem_layout)
        for name, arr in arrays.items():
            v[name][...] = arr
        self.buf = _buffers(v)
        self._actions = v["actions"]
        bounds = np.linspace(0, num_envs, num_workers + 1).round().astype(int)
        self._chunks = [(int(bounds[i]), int(bounds[i + 1])) for i in range(num_workers)]
        self._conns: list = []
        self._procs: list = []
        for lo, hi in self._chunks:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker_main, args=(child, raw, mem_layout, cfg, layout, lo, hi),
                            daemon=True, name=f"marl-env-worker-{lo}-{hi}")
            p.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(p)
        self.close = weakref.finalize(self, _shutdown, self._procs, self._conns)
        try:
            self._gather("starting")
        except BaseException:
            self.close()
            raise

    def _gather(self, what: str) -> list[bytes]:
        """Every worker's reply (b"ok", or b"S" + payload); RuntimeError if one failed."""
        err, replies = None, []
        for k, c in enumerate(self._conns):
            lo, hi = self._chunks[k]
            try:
                msg = c.recv_bytes()
            except (EOFError, OSError):
                err = err or f"env worker {k} (envs {lo}..{hi - 1}) died while {what}"
                continue
            replies.append(msg)
            if msg != b"ok" and msg[:1] not in (b"S", b"I") and err is None:
                err = (f"env worker {k} (envs {lo}..{hi - 1}) failed while {what}:\n"
                       + msg[1:].decode(errors="replace"))
        if err is not None:
            raise RuntimeError(err)
        return replies

    def _scatter(self, tag: str, items: list, what: str) -> None:
        """Send each worker ``(tag, its chunk of items)`` and wait for all."""
        for c, (lo, hi) in zip(self._conns, self._chunks, strict=True):
            c.send((tag, items[lo:hi]))
        self._gather(what)

    def reset(self, seeds: list[int | None]) -> None:
        self._scatter("reset", seeds, "resetting")

    def step(self, actions: np.ndarray) -> None:
        self._actions[:] = actions
        for c in self._conns:
            c.send("step")
        ended = {}  # the workers' episode statistics (b"I" replies), by row of the batch
        for (lo, _), reply in zip(self._chunks, self._gather("stepping"), strict=True):
            if reply[:1] == b"I":
                ended.update({lo + j: st for j, st in pickle.loads(reply[1:]).items()})
        buf = self.buf
        if ended or buf.episode:
            rows = np.flatnonzero(buf.terminated | buf.truncated).tolist()
            write_episode_stats(buf.episode, {j: ended.get(j, {}) for j in rows},
                                len(buf.reward))

    def snapshot(self) -> list[bytes]:
        for c in self._conns:
            c.send("snapshot")
        return [e for r in self._gather("saving state") for e in pickle.loads(r[1:])]

    def restore(self, snapshots: list[bytes]) -> None:
        self._scatter("restore", snapshots, "restoring state")
