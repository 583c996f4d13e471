"""A storage simulator for the deployment rig: a Cinder volume driver whose arrays and
replication pairs live in a small JSON file.

It plays the arrays of the admin guide's story: backend A replicates to B, A is lost,
Cinder fails over to B, the admin promotes B and points cinder.conf at C. A driver
author will recognise the shape of a real replicating driver:

- `simulator_array` (cinder.conf, per backend) is the array the backend manages and
  `replication_device = backend_id:<array>` its replication target;
- `create_volume` puts the volume on the primary array and, for a replicated volume
  type (`replication_enabled='<is> True'`), a replica on the target plus a pair;
- `failover_host` (standalone) and `failover`/`failover_completed` (active-active)
  promote the replicas on the target; a replicated volume without a replica there is
  lost (`status` error);
- `freeze_backend`/`thaw_backend` are recorded on the array;
- `StorageSimulatorHookDriver.update_host_replication` is the driver guide's hook made
  real, built on `cinder_promote.drivers.bulk.UpdateList`.

`StorageSimulatorDriver`, the same driver without the hook, is the control backend:
what stock Cinder does with this array.

The state file (simulator_state.py) is shared by every process of the deployment,
read and written under an exclusive lock.

This module lives with the tests, not in the package: it subclasses Cinder's own
`cinder.tests.fake_driver.FakeLoggingVolumeDriver`, so it can only be imported where
Cinder is installed, and cinder-promote itself never imports Cinder. The rig puts
this folder on cinder-volume's PYTHONPATH and names the classes as
`storage_simulator.StorageSimulatorDriver` / `...HookDriver` in `volume_driver`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from cinder import exception
from cinder.objects import fields
from cinder.tests import fake_driver
from cinder.volume import configuration
from cinder.volume import volume_utils

from cinder_promote.drivers.bulk import UpdateList
from simulator_state import array, array_state

LOG = logging.getLogger(__name__)

simulator_opts = [
    cfg.StrOpt('simulator_state_file', help='JSON file holding the simulated arrays and pairs.'),
    cfg.StrOpt('simulator_array', help='The array this backend manages (its primary).'),
    cfg.FloatOpt('simulator_hook_delay', default=0.0,
                 help='Seconds update_host_replication takes (a slow array).'),
]
cfg.CONF.register_opts(simulator_opts, group=configuration.SHARED_CONF_GROUP)

REPLICATED = (fields.ReplicationStatus.ENABLED, fields.ReplicationStatus.FAILED_OVER)


class StorageSimulatorDriver(fake_driver.FakeLoggingVolumeDriver):
    """A replicating array without update_host_replication: the control backend."""

    VERSION = '1.0.0'
    SUPPORTS_ACTIVE_ACTIVE = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Cinder passes the service's active_backend_id (None unless failed over).
        self._active_backend_id = kwargs.get('active_backend_id')
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(simulator_opts)
        self.backend_name = self.configuration.safe_get('volume_backend_name') or 'simulator'

    # -- where things are -------------------------------------------------------------------------

    @property
    def state_file(self) -> str:
        return self.configuration.simulator_state_file

    @property
    def primary(self) -> str:
        """The array serving the volumes: the replication target after a failover."""
        return self._active_backend_id or self.configuration.simulator_array

    def targets(self) -> list[str]:
        devices = self.configuration.safe_get('replication_device') or []
        return [d['backend_id'] for d in devices]

    def location(self, volume_id: str) -> str:
        return f'{self.primary}:{volume_id}'

    @staticmethod
    def pair_of(volume_id: str, primary: str, target: str) -> str:
        return f'{primary}/{volume_id}->{target}/{volume_id}'

    def _pair(self, state: dict[str, Any], volume: Any, target: str) -> str:
        """The volume's pair to `target`, created when missing (idempotent)."""
        pair = self.pair_of(volume.id, self.primary, target)
        array(state, target)['volumes'].setdefault(volume.id, {'size': volume.size, 'replica_of': self.primary})
        state['pairs'][volume.id] = {'primary': self.primary, 'secondary': target, 'pair': pair}
        return pair

    # -- driver ---------------------------------------------------------------------------------

    def do_setup(self, context: Any) -> None:
        super().do_setup(context)
        if not self.state_file or not self.configuration.simulator_array:
            raise exception.InvalidConfigurationValue(
                option='simulator_state_file/simulator_array', value=None)
        with array_state(self.state_file) as state:
            array(state, self.primary)

    def _update_volume_stats(self) -> None:
        super()._update_volume_stats()
        replicating = bool(self.targets())
        pool = self._stats['pools'][0]
        pool.update(pool_name=self.backend_name, reserved_percentage=0, replication_enabled=replicating,
                    replication_targets=self.targets(), replication_type=['async'])
        self._stats.update(volume_backend_name=self.backend_name, replication_enabled=replicating,
                           replication_targets=self.targets(), active_backend_id=self._active_backend_id)

    def create_volume(self, volume: Any) -> dict[str, Any]:
        replicated = False
        try:
            replicated = bool(volume.volume_type and volume_utils.is_replicated_spec(volume.volume_type.extra_specs))
        except exception.VolumeTypeNotFound:
            pass
        update: dict[str, Any] = {'provider_location': self.location(volume.id)}
        with array_state(self.state_file) as state:
            array(state, self.primary)['volumes'][volume.id] = {'size': volume.size}
            if replicated and self.targets():
                update.update(replication_status=fields.ReplicationStatus.ENABLED,
                              replication_driver_data=self._pair(state, volume, self.targets()[0]))
            elif replicated:
                update.update(replication_status=fields.ReplicationStatus.DISABLED)
        return update

    def delete_volume(self, volume: Any) -> None:
        with array_state(self.state_file) as state:
            array(state, self.primary)['volumes'].pop(volume.id, None)
            pair = state['pairs'].pop(volume.id, None)
            if pair:
                array(state, pair['secondary'])['volumes'].pop(volume.id, None)

    def freeze_backend(self, context: Any) -> bool:
        with array_state(self.state_file) as state:
            frozen = array(state, self.primary)['frozen']
            if self.host not in frozen:
                frozen.append(self.host)
        return True

    def thaw_backend(self, context: Any) -> bool:
        with array_state(self.state_file) as state:
            frozen = array(state, self.primary)['frozen']
            if self.host in frozen:
                frozen.remove(self.host)
        return True

    # -- replication ----------------------------------------------------------------------------

    def _fail_over(self, volumes: list[Any], secondary_id: str | None) -> tuple[str, list[dict[str, Any]], list]:
        if secondary_id == 'default' or not self.targets():
            raise exception.InvalidReplicationTarget(
                reason='the simulator fails over to its replication_device only (no failback)')
        target = secondary_id or self.targets()[0]
        if target not in self.targets():
            raise exception.InvalidReplicationTarget(reason=f'{target} is not a replication_device')
        updates = []
        with array_state(self.state_file) as state:
            replicas = array(state, target)['volumes']
            for volume in volumes:
                pair = state['pairs'].get(volume.id)
                if pair and pair['secondary'] == target and volume.id in replicas:
                    replicas[volume.id].pop('replica_of', None)   # the replica is now the volume
                    del state['pairs'][volume.id]
                    updates.append({'volume_id': volume.id, 'updates': {
                        'replication_status': fields.ReplicationStatus.FAILED_OVER,
                        'provider_location': f'{target}:{volume.id}', 'replication_driver_data': None}})
                else:   # no replica on the target: lost with the primary
                    updates.append({'volume_id': volume.id, 'updates': {'status': 'error'}})
        LOG.info('Simulator: failed over %d volume(s) to %s', len(updates), target)
        return target, updates, []

    def failover_host(self, context: Any, volumes: list[Any], secondary_id: str | None = None,
                      groups: list[Any] | None = None) -> tuple[str, list[dict[str, Any]], list]:
        answer = self._fail_over(volumes, secondary_id)
        self._active_backend_id = answer[0]
        return answer

    def failover(self, context: Any, volumes: list[Any], secondary_id: str | None = None,
                 groups: list[Any] | None = None) -> tuple[str, list[dict[str, Any]], list]:
        return self._fail_over(volumes, secondary_id)

    def failover_completed(self, context: Any, active_backend_id: str | None = None) -> None:
        self._active_backend_id = active_backend_id


class StorageSimulatorHookDriver(StorageSimulatorDriver):
    """The same array with update_host_replication, as docs/driver-guide.md teaches."""

    def update_host_replication(self, context: Any, replication_status: str | None,
                                active_backend_id: str | None, volumes: list[Any],
                                groups: list[Any] | None = None) -> tuple[Any, list, list]:
        with array_state(self.state_file) as state:
            array(state, self.primary)['hook_calls'].append(
                {'host': self.host, 'pid': os.getpid(), 'at': time.time(), 'status': replication_status})
        if self.configuration.simulator_hook_delay:
            time.sleep(self.configuration.simulator_hook_delay)
        # Only after a promotion (reset-active-backend --enable-replication) is there
        # something to do; otherwise say nothing and let Cinder derive the status as stock.
        if replication_status != fields.ReplicationStatus.ENABLED or active_backend_id or not self.targets():
            return None, [], []
        target = self.targets()[0]
        updates = UpdateList('volume')
        with array_state(self.state_file) as state:
            alive = array(state, self.primary)['volumes']
            for volume in volumes:
                # Re-pair only what is replicated and alive on the new primary; lost or
                # never-replicated volumes are left as they are.
                if (volume.replication_status not in REPLICATED or volume.status == 'error'
                        or volume.id not in alive):
                    continue
                # The whole answer every time (idempotent): the hook drops what is unchanged.
                updates.add(volume, replication_status=fields.ReplicationStatus.ENABLED,
                            replication_driver_data=self._pair(state, volume, target),
                            provider_location=self.location(volume.id))
        LOG.info('Simulator: %d volume(s) paired from %s to %s', len(updates), self.primary, target)
        return {'replication_status': fields.ReplicationStatus.ENABLED}, updates.entries, []
