"""The Dask engine on a ``distributed.LocalCluster`` of 2 worker processes: the same result as local
threads (bit for bit) and as a whole-image fusion (within the stated tolerance), outputs written by
the workers, and ``mfif fuse --scheduler tcp://`` / ``local:N`` end to end."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip("distributed")

import dask  # noqa: E402
import zarr  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import mfif  # noqa: E402
from mfif.cli import main  # noqa: E402
from mfif.engines.dask import compute, fuse_dask  # noqa: E402
from mfif.io import from_float  # noqa: E402
from mfif.ome import write_pyramid  # noqa: E402
from mfif.zstack import open_zstack  # noqa: E402

from test_dask import AGREE_MIN, PSNR_MIN, planes, psnr, write_pages  # noqa: E402,F401  (planes: a fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


@pytest.mark.parametrize("method", ["focus-map", "sff"])
def test_distributed_equals_threads_equals_whole(tmp_path, planes, client, method):
    stack = open_zstack(write_pages(tmp_path / "z.tif", planes, tile=(64, 64)), chunk=128)  # read by the workers
    fused, depth = fuse_dask(stack.array, method=method, chunk=128)
    f_dist, d_dist = client.compute([fused, depth], sync=True)
    with dask.config.set(scheduler="threads"):
        f_thr, d_thr = dask.compute(*fuse_dask(planes, method=method, chunk=128))
    assert np.array_equal(f_dist, f_thr) and np.array_equal(d_dist, d_thr)
    whole = mfif.fuse(list(planes), method=method)
    assert psnr(f_dist, from_float(whole.fused, np.uint8)) > PSNR_MIN
    assert np.mean(d_dist == whole.decision) > AGREE_MIN


def test_workers_write_pyramid(tmp_path, planes, client):
    fused, _ = fuse_dask(planes, method="focus-map", chunk=128)
    out = write_pyramid(tmp_path / "f.ome.zarr", fused, compute=compute)  # compute: on the client's cluster
    f = dask.compute(fused, scheduler="threads")[0]
    assert np.array_equal(np.moveaxis(np.asarray(zarr.open_group(str(out), mode="r")["0"]), 0, -1), f)


def test_cli_on_running_scheduler(tmp_path, planes, client, capsys):
    src = write_pages(tmp_path / "z.tif", planes)
    address = client.scheduler.address
    code = main(["fuse", str(src), "-o", str(tmp_path / "f.ome.tif"), "-m", "focus-map", "--tile", "128",
                 "--scheduler", address, "--depth-map", str(tmp_path / "d.ome.zarr")])
    assert code == 0, capsys.readouterr().err
    f, d = dask.compute(*fuse_dask(planes, method="focus-map", chunk=128), scheduler="threads")
    with tifffile.TiffFile(tmp_path / "f.ome.tif") as tf:
        assert np.array_equal(tf.series[0].levels[0].asarray(), f)
    assert np.array_equal(np.asarray(zarr.open_group(str(tmp_path / "d.ome.zarr"), mode="r")["0"])[0], d)


def test_cli_local_cluster(tmp_path, planes, capsys):
    src = write_pages(tmp_path / "z.tif", planes)
    code = main(["fuse", str(src), "-o", str(tmp_path / "f.tif"), "-m", "focus-map", "--tile", "128",
                 "--scheduler", "local:2"])
    assert code == 0, capsys.readouterr().err
    f = dask.compute(fuse_dask(planes, method="focus-map", chunk=128)[0], scheduler="threads")[0]
    assert np.array_equal(mfif.read_image(tmp_path / "f.tif"), f)


class DyingPlanes:
    """A window reader whose reads kill the worker process: once (while ``flag`` exists, which the
    first read removes) or on every read (``always``)."""

    def __init__(self, planes, flag, always=False):
        self.planes, self.flag, self.always = planes, str(flag), always
        self.shape, self.dtype, self.ndim = planes.shape, planes.dtype, planes.ndim

    def __getitem__(self, key):
        import os

        if self.always:
            os._exit(1)
        try:
            os.unlink(self.flag)
        except FileNotFoundError:
            return self.planes[key]
        os._exit(1)


@pytest.fixture()
def fragile_client():
    """A cluster of its own (workers get killed) that gives a task up after 2 dead workers."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), \
            LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


def test_a_dead_worker_is_replaced_and_the_output_complete(tmp_path, planes, fragile_client):
    flag = tmp_path / "kill-once"
    flag.touch()
    fused, _ = fuse_dask(DyingPlanes(planes, flag), method="focus-map", chunk=128)
    out = write_pyramid(tmp_path / "f.ome.zarr", fused, compute=compute)
    assert not flag.exists()  # a worker did die
    with dask.config.set(scheduler="threads"):
        expect = fuse_dask(planes, method="focus-map", chunk=128)[0].compute()
    assert np.array_equal(np.moveaxis(np.asarray(zarr.open_group(str(out), mode="r")["0"]), 0, -1), expect)


def test_workers_that_keep_dying_fail_the_run_and_leave_nothing(tmp_path, planes, fragile_client):
    from mfif.errors import RunFailed

    fused, _ = fuse_dask(DyingPlanes(planes, tmp_path / "unused", always=True), method="focus-map", chunk=128)
    with pytest.raises(RunFailed, match="workers died"):
        write_pyramid(tmp_path / "f.ome.zarr", fused, compute=compute)
    assert list(tmp_path.iterdir()) == []
