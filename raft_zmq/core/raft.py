"""The Raft consensus state machine: leader election with pre-vote and check-quorum, log
replication with fast backtracking and pipelining, the commit rule of §5.4.2, ReadIndex, single-
server membership changes and leadership transfer.

It is a pure function of its inputs: ``tick()``, ``step(message)``, ``propose(data)`` and the
driver's ``advance(ready)``. It reads durable entries through a ``LogReader`` and never writes;
randomness comes from the ``rng`` handed in (anything with ``randrange``). Its output is a
``Ready`` (see ready.py for the order in which the driver must handle one).

References in comments: "§" is the Raft paper (Ongaro & Ousterhout, 2014); "thesis" is Ongaro's
dissertation; "etcd" is etcd-io/raft, whose structure (a step function per role) this follows.
"""

from __future__ import annotations

from typing import Protocol

from raft_zmq.core import quorum, validate
from raft_zmq.core.backlog import Backlog
from raft_zmq.core.configcodec import encode_config
from raft_zmq.core.confighistory import ConfigHistory, changed_config
from raft_zmq.core.log import LogReader, entry_size
from raft_zmq.core.plants import (
    PLANT_ACK_BEFORE_SYNC,
    PLANT_COMMIT_PREVIOUS_TERM,
    PLANT_EARLY_BEFORE_TERM_SYNC,
    PLANT_READS_KEPT_ON_CONFIG_CHANGE,
    PLANT_VOTE_WITHOUT_LOG_CHECK,
)
from raft_zmq.core.progress import Inflights, Progress, ProgressState
from raft_zmq.core.raftlog import RaftLog
from raft_zmq.core.readindex import ReadIndex
from raft_zmq.core.ready import (
    ConfigChange,
    ConfigChangeRejected,
    CoreOptions,
    NotLeader,
    ProposalDropped,
    ProposalTooLarge,
    Ready,
    Role,
    SoftState,
)
from raft_zmq.core.types import (
    AppendEntries,
    AppendEntriesReply,
    ClusterConfig,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    InstallSnapshotReply,
    Message,
    NodeId,
    RequestVote,
    RequestVoteReply,
    SnapshotMeta,
    TimeoutNow,
)

_CONFIG_SCAN_BYTES_MAX = 4 * 1024 * 1024  # entries read per step when rebuilding configs at start


class Rng(Protocol):
    def randrange(self, stop: int) -> int: ...


class RaftCore:
    def __init__(
        self,
        node_id: NodeId,
        reader: LogReader,
        hard_state: HardState,
        snapshot: SnapshotMeta,
        *,
        rng: Rng,
        options: CoreOptions | None = None,
        applied: int = 0,
    ) -> None:
        assert node_id, "a node needs an ID"
        self.id = node_id
        self.options = options or CoreOptions()
        self._rng = rng
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.log = RaftLog(reader, hard_state.commit, applied)
        self.role = Role.FOLLOWER
        self.leader: NodeId | None = None
        self._persisted = hard_state
        self._configs = ConfigHistory(snapshot)
        self._load_configs()
        # The snapshot the driver can stream to a lagging follower (set_snapshot); the log's own
        # compaction point may lie before it, never after.
        self._latest_snapshot: SnapshotMeta | None = None
        self._progress: dict[NodeId, Progress] = {}
        self._votes: dict[NodeId, bool] = {}
        self.election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self._new_election_timeout()
        self.lead_transferee: NodeId | None = None
        self._uncommitted = Backlog()
        self._needs_broadcast = False
        self._needs_empty_broadcast = False
        planted_reads_kept = PLANT_READS_KEPT_ON_CONFIG_CHANGE in self.options.plants
        self._reads = ReadIndex(planted_kept_on_config_change=planted_reads_kept)
        # Outputs accumulated for the next Ready.
        self._early: list[Message] = []
        self._late: list[Message] = []
        self._last_soft = SoftState(self.role, self.leader, self.term)
        self._config_changed = True  # the driver learns the configuration with the first Ready
        self._outstanding: Ready | None = None
        self.dropped: dict[str, int] = {}
        self._planted_early_before_term_sync = PLANT_EARLY_BEFORE_TERM_SYNC in self.options.plants
        self._planted_ack_before_sync = PLANT_ACK_BEFORE_SYNC in self.options.plants
        # The term, vote and commit index seen by the last _check_invariants(), starting from the
        # durable ones: how the check sees that one went back or a vote changed in its term.
        self._checked_term, self._checked_vote = hard_state.term, hard_state.vote
        self._checked_commit = self.log.committed

    # --- public queries -----------------------------------------------------------------------
    @property
    def config(self) -> ClusterConfig:
        return self._configs.current

    def config_at(self, index: int) -> ClusterConfig:
        """The configuration in force at ``index`` (which must not be compacted away)."""
        return self._configs.at(index)

    def snapshot_meta(self, index: int) -> SnapshotMeta:
        """The metadata of a snapshot of the state machine at applied ``index``."""
        term = self.log.term(index)
        assert term is not None and index <= self.log.applied, (index, self.log.applied)
        return SnapshotMeta(index, term, self.config_at(index))

    @property
    def latest_snapshot(self) -> SnapshotMeta | None:
        return self._latest_snapshot

    def status(self) -> dict[str, object]:
        return {
            "id": self.id,
            "role": self.role.value,
            "term": self.term,
            "leader": self.leader,
            "commit": self.log.committed,
            "applied": self.log.applied,
            "first_index": self.log.first_index(),
            "last_index": self.log.last_index(),
            "snapshot_index": self._latest_snapshot.index if self._latest_snapshot else 0,
            "progress": {
                peer: {"match": pr.match, "next": pr.next, "state": pr.state.value}
                for peer, pr in sorted(self._progress.items())
            },
        }

    def committed_in_term(self) -> bool:
        """Whether this leader has committed an entry of its own term (its no-op)."""
        return self.log.term(self.log.committed) == self.term

    # --- inputs --------------------------------------------------------------------------------
    def tick(self) -> None:
        self._assert_no_outstanding_ready()
        if self.role is Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()
        self._check_invariants()

    def campaign(self) -> None:
        """Start an election now (a bootstrapping single node, or an operator's request)."""
        self._assert_no_outstanding_ready()
        if self.role is not Role.LEADER and self._promotable():
            self._start_election(transfer=False)
        self._check_invariants()

    def propose(self, data: bytes) -> int:
        """Append a command; returns its index (its term is ``self.term``)."""
        self._assert_no_outstanding_ready()
        self._check_can_propose(len(data))
        entry = Entry(self.log.last_index() + 1, self.term, EntryKind.NORMAL, data)
        self._append_as_leader([entry])
        return entry.index

    def propose_config(self, change: ConfigChange) -> int | None:
        """Propose a single-server membership change; returns its index, or None when the
        configuration already is as asked. One change at a time, and only after this leader has
        committed an entry of its term (Ongaro, raft-dev 2015: otherwise two changes across a
        leader change can form two disjoint majorities)."""
        self._assert_no_outstanding_ready()
        self._check_can_propose(0)
        if not self.committed_in_term():
            raise ProposalDropped("the leader has not yet committed an entry of its term")
        if self._configs.current_index > self.log.committed:
            raise ProposalDropped("another configuration change is not yet committed")
        new = changed_config(self.config, change)
        if new == self.config:
            return None
        entry = Entry(self.log.last_index() + 1, self.term, EntryKind.CONFIG, encode_config(new))
        self._append_as_leader([entry])
        return entry.index

    def read_index(self, ctx: int) -> None:
        """Ask to serve a linearizable read; a ``ReadState(ctx, index)`` comes out in a later
        Ready once a majority has confirmed this node is still the leader (or ``ctx`` comes out
        in ``failed_reads`` if leadership is lost first)."""
        self._assert_no_outstanding_ready()
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if not self.committed_in_term():
            self._reads.wait_for_commit(ctx)
            return
        self._queue_read(ctx)

    def transfer_leadership(self, target: NodeId) -> None:
        """Hand leadership to ``target`` (thesis §3.10): bring it up to date, then TimeoutNow.
        Proposals are refused meanwhile; the attempt is abandoned after an election timeout."""
        self._assert_no_outstanding_ready()
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if target == self.id:
            return
        if target not in self.config.voters:
            raise ConfigChangeRejected(f"{target} is not a voter")
        self.lead_transferee = target
        self.election_elapsed = 0
        if self._progress[target].match == self.log.last_index():
            self._send(TimeoutNow(self.term, self.id, target))
        else:
            self._send_append(target, send_if_empty=True)

    def set_snapshot(self, meta: SnapshotMeta) -> None:
        """The driver holds a snapshot at ``meta`` that it can stream to lagging followers; it may
        now compact the log up to ``meta.index`` (or less)."""
        self._assert_no_outstanding_ready()
        assert meta.index <= self.log.applied
        self.set_snapshot_unchecked(meta)

    def set_snapshot_unchecked(self, meta: SnapshotMeta) -> None:
        """Record ``meta`` as the snapshot to stream (no check on the applied index)."""
        if self._latest_snapshot is None or meta.index > self._latest_snapshot.index:
            self._latest_snapshot = meta

    def log_compacted(self) -> None:
        """The driver dropped a log prefix: forget configurations no longer needed."""
        self._configs.compacted(self.log.first_index() - 1)

    def report_unreachable(self, peer: NodeId) -> None:
        """The transport could not deliver to ``peer``: stop streaming optimistically to it."""
        pr = self._progress.get(peer)
        if self.role is Role.LEADER and pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    def report_snapshot(self, peer: NodeId, success: bool) -> None:
        """The driver finished (or gave up) streaming a snapshot to ``peer``."""
        pr = self._progress.get(peer)
        if self.role is not Role.LEADER or pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        if not success:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.probe_sent = True  # wait for the follower's answer (or a heartbeat) before probing

    def step(self, m: Message) -> None:
        """Handle one message from a peer. Malformed or misdirected ones are dropped and counted."""
        self._assert_no_outstanding_ready()
        problem = validate.problem(m, self.id)
        if problem:
            self._drop(problem)
        elif self._step_term(m):
            self._step_role(m)
        self._check_invariants()

    def _step_role(self, m: Message) -> None:
        if isinstance(m, RequestVote):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    # --- output --------------------------------------------------------------------------------
    def has_ready(self) -> bool:
        return bool(
            self._needs_broadcast
            or self._needs_empty_broadcast
            or self._reads.round_needed
            or self._early
            or self._late
            or self._reads.has_output()
            or self.log.unstable
            or self.log.pending_snapshot is not None
            or self.log.committed > self.log.applied
            or self._soft_state_changed()
            or self._config_changed
            or self._hard_state_dirty(entries=False)
        )

    def ready(self) -> Ready:
        self._assert_no_outstanding_ready()
        if self.role is Role.LEADER:
            if self._needs_broadcast or self._needs_empty_broadcast:
                self._broadcast_append(send_if_empty=self._needs_empty_broadcast)
            if self._reads.take_round():
                self._broadcast_heartbeat()
        self._needs_broadcast = self._needs_empty_broadcast = self._reads.round_needed = False
        entries = tuple(self.log.unstable)
        committed = tuple(self.log.next_committed(self.options.apply_bytes_max))
        assert not committed or (
            committed[0].index == max(self.log.applied, self.log.first_index() - 1) + 1
            and committed[-1].index - committed[0].index == len(committed) - 1
        ), "committed entries are handed out in order, without gaps"
        hard = HardState(self.term, self.vote, self.log.committed)
        soft = SoftState(self.role, self.leader, self.term) if self._soft_state_changed() else None
        early, late = self._early, self._late
        if early and self._term_or_vote_dirty() and not self._planted_early_before_term_sync:
            # Persist before you speak: a round that changes term or vote may carry messages of
            # that term (a single voter wins inside campaign()); none leaves before the sync.
            early, late = [], early + late
        read_states, failed_reads = self._reads.take_output()
        rd = Ready(
            hard_state=hard if self._hard_state_dirty(bool(entries)) else None,
            entries=entries,
            snapshot=self.log.pending_snapshot,
            early_messages=tuple(early),
            messages=tuple(late),
            committed=committed,
            read_states=read_states,
            failed_reads=failed_reads,
            soft_state=soft,
            config=self.config if self._config_changed else None,
        )
        self._early, self._late = [], []
        if soft is not None:
            self._last_soft = soft
        self._config_changed = False
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver has handled ``rd`` completely (see ready.py)."""
        assert self._outstanding is rd, "advance() takes the Ready that ready() returned"
        self._outstanding = None
        self.log.stable_to(rd.entries, rd.snapshot)
        if rd.snapshot is not None:
            # The driver installed it and keeps its file: it is the snapshot this node streams
            # if it leads later (found by the simulator: a leader whose log began after an
            # installed snapshot had none to send and asserted).
            self.set_snapshot_unchecked(rd.snapshot)
        if rd.hard_state is not None:
            self._persisted = rd.hard_state
        if rd.committed:
            self.log.applied_to(rd.committed[-1].index)
        if self.role is Role.LEADER and rd.entries:
            # docs/raft.md (safety, point 2) and etcd issue 14370: the leader counts itself only
            # once its entries are durable.
            self._progress[self.id].maybe_update(self._durable_index())
            if self._maybe_commit():
                self._needs_empty_broadcast = True
        self._check_invariants()

    # --- terms and elections -----------------------------------------------------------------
    def _step_term(self, m: Message) -> bool:
        """§5.1: react to the sender's term. Returns whether the message is processed further."""
        if m.term > self.term:
            if isinstance(m, RequestVote):
                in_lease = (
                    self.options.check_quorum
                    and self.leader is not None
                    and self.election_elapsed < self.options.election_timeout_ticks
                )
                if in_lease and not m.transfer:
                    # Leader stickiness (thesis §4.2.3): we heard from a leader recently, so this
                    # candidate is disruptive; ignore it without adopting its term.
                    self._drop("vote_request_in_lease")
                    return False
                if m.pre_vote:
                    return True  # a pre-vote never changes our term
            if isinstance(m, RequestVoteReply) and m.pre_vote and m.granted:
                return True  # a granted pre-vote carries the future term, not a real one
            from_leader = isinstance(m, AppendEntries | Heartbeat | InstallSnapshot)
            leader = m.sender if from_leader else None
            self._become_follower(m.term, leader)
            return True
        if m.term < self.term:
            if isinstance(m, AppendEntries | Heartbeat) and (
                self.options.check_quorum or self.options.pre_vote
            ):
                # A stale leader (partitioned while we moved on): tell it our term so it steps
                # down; with pre-vote and check-quorum it could otherwise never learn it.
                self._send(AppendEntriesReply(self.term, self.id, m.sender, False, 0))
            elif isinstance(m, RequestVote) and m.pre_vote:
                self._send(RequestVoteReply(self.term, self.id, m.sender, False, pre_vote=True))
            else:
                self._drop("stale_term")
            return False
        return True

    def _handle_vote_request(self, m: RequestVote) -> None:
        can_vote = (
            self.vote == m.sender
            or (self.vote is None and self.leader is None)
            or (m.pre_vote and m.term > self.term)
        )
        up_to_date = PLANT_VOTE_WITHOUT_LOG_CHECK in self.options.plants or (
            self.log.is_up_to_date(m.last_index, m.last_term)
        )
        if can_vote and up_to_date:
            if not m.pre_vote:
                assert self.vote in (None, m.sender), "one vote per term"
                self.election_elapsed = 0
                self.vote = m.sender  # persisted before the reply leaves (it is a late message)
            self._send(RequestVoteReply(m.term, self.id, m.sender, True, m.pre_vote))
        else:
            self._send(RequestVoteReply(self.term, self.id, m.sender, False, m.pre_vote))

    def _promotable(self) -> bool:
        """Whether this node starts elections: as a voter of its latest configuration, and also
        (thesis §4.2.2) while that configuration, which removed it, is not committed: a leader
        that appended its own removal and stepped down may hold the longest log, and then no
        other voter can win without it. Its own vote does not count (``quorum.tally`` counts
        voters only)."""
        if self.log.pending_snapshot is not None:
            return False
        if self.id in self.config.voters:
            return True
        committed = self.log.committed
        return (
            self._configs.current_index > committed
            and self.id in self._configs.at(committed).voters
        )

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self._promotable() and self.election_elapsed >= self._randomized_timeout:
            self.election_elapsed = 0
            self._start_election(transfer=False)

    def _start_election(self, *, transfer: bool) -> None:
        """§5.2, with pre-vote first (thesis §9.6) unless the leader ordered this campaign."""
        self._campaign(pre_vote=self.options.pre_vote and not transfer, transfer=transfer)

    def _campaign(self, *, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self._become_pre_candidate()
            vote_term = self.term + 1  # the term we would use; nothing changes until we win
        else:
            self._become_candidate()
            vote_term = self.term
        self._votes = {self.id: True}
        if self._poll():
            return
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for voter in sorted(self.config.voters - {self.id}):
            self._send(
                RequestVote(vote_term, self.id, voter, last_index, last_term, pre_vote, transfer)
            )

    def _poll(self) -> bool:
        """Count the votes; returns True once the election is decided."""
        result = quorum.tally(self.config.voters, self._votes)
        if result is quorum.VoteResult.WON:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
            return True
        if result is quorum.VoteResult.LOST:
            self._become_follower(self.term, None)
            return True
        return False

    def _step_candidate(self, m: Message) -> None:
        if isinstance(m, AppendEntries | Heartbeat | InstallSnapshot):
            self._become_follower(m.term, m.sender)  # §5.2: a leader of our term exists
            self._step_follower(m)
        elif isinstance(m, RequestVoteReply):
            if m.pre_vote != (self.role is Role.PRE_CANDIDATE):
                self._drop("vote_reply_other_phase")
                return
            self._votes.setdefault(m.sender, m.granted)
            self._poll()
        else:
            self._drop(f"{type(m).__name__}_as_candidate")

    def _reset(self, term: int) -> None:
        if term != self.term:
            assert term > self.term, "terms never go back"
            self.term = term
            self.vote = None
        self.leader = None
        self.election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self._new_election_timeout()
        self.lead_transferee = None
        self._votes = {}
        self._progress = {}
        self._uncommitted.clear()
        self._reads.fail_all()

    def _become_follower(self, term: int, leader: NodeId | None) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader

    def _become_pre_candidate(self) -> None:
        assert self.role is not Role.LEADER
        self.role = Role.PRE_CANDIDATE
        self.leader = None
        self._votes = {}

    def _become_candidate(self) -> None:
        assert self.role is not Role.LEADER
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        assert self.role is Role.CANDIDATE
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        last = self.log.last_index()
        for server in self.config.servers:
            self._progress[server.id] = self._new_progress(last + 1)
        if self.id not in self._progress:  # leading while being removed: still track ourselves
            self._progress[self.id] = self._new_progress(last + 1)
        self._progress[self.id].match = self._durable_index()
        self._reads.new_leader()
        # §8 / thesis §6.4: commit an entry of our term at once, for commitment and ReadIndex.
        self._append_as_leader([Entry(last + 1, self.term, EntryKind.NOOP)])

    def _new_progress(self, next_index: int) -> Progress:
        inflights = Inflights(self.options.inflight_appends_max, self.options.inflight_bytes_max)
        return Progress(match=0, next=next_index, inflights=inflights, recent_active=True)

    def _new_election_timeout(self) -> int:
        base = self.options.election_timeout_ticks
        return base + self._rng.randrange(base)

    # --- leader ---------------------------------------------------------------------------------
    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.options.election_timeout_ticks:
            self.election_elapsed = 0
            if self.options.check_quorum and not self._quorum_recently_active():
                self._become_follower(self.term, None)  # it cannot commit anything: step down
                return
            self.lead_transferee = None  # a transfer that did not finish in time is abandoned
        if self._heartbeat_elapsed >= self.options.heartbeat_interval_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat()

    def _quorum_recently_active(self) -> bool:
        active = {self.id}
        for peer, pr in self._progress.items():
            if pr.recent_active:
                active.add(peer)
            if peer != self.id:
                pr.recent_active = False
        votes = {v: v in active for v in self.config.voters}
        return quorum.tally(self.config.voters, votes) is quorum.VoteResult.WON

    def _step_leader(self, m: Message) -> None:
        pr = self._progress.get(m.sender)
        if pr is None:
            self._drop("from_non_member")
            return
        pr.recent_active = True
        if isinstance(m, AppendEntriesReply):
            self._handle_append_reply(m, pr)
        elif isinstance(m, HeartbeatReply):
            self._handle_heartbeat_reply(m, pr)
        elif isinstance(m, InstallSnapshotReply):
            if pr.state is ProgressState.SNAPSHOT:
                if m.success:
                    pr.maybe_update(m.index)
                else:
                    pr.pending_snapshot = 0
                pr.become_probe()
                self._send_append(m.sender)
        else:
            self._drop(f"{type(m).__name__}_as_leader")

    def _handle_append_reply(self, m: AppendEntriesReply, pr: Progress) -> None:
        if not m.success:
            hint = m.conflict_index
            if m.conflict_term > 0:
                hint = self.log.find_conflict_by_term(m.conflict_index, m.conflict_term)
            if pr.maybe_decrease_to(m.index, hint + 1):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.sender)
            return
        if m.index > self.log.last_index():
            self._drop("ack_beyond_last_index")  # the follower claims entries we never sent
            return
        if pr.maybe_update(m.index):
            if pr.state is ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                pr.become_probe()
                pr.become_replicate()
            elif pr.state is ProgressState.REPLICATE:
                pr.inflights.free_to(m.index)
            if self._maybe_commit():
                self._needs_empty_broadcast = True
                if self.role is not Role.LEADER:
                    return  # the commit removed us from the cluster; we stepped down
            while self._send_append(m.sender):  # keep the pipeline full
                pass
            if m.sender == self.lead_transferee and pr.match == self.log.last_index():
                self._send(TimeoutNow(self.term, self.id, m.sender))

    def _handle_heartbeat_reply(self, m: HeartbeatReply, pr: Progress) -> None:
        pr.probe_sent = False
        if pr.state is ProgressState.SNAPSHOT and m.last_index >= pr.pending_snapshot > 0:
            pr.become_probe()
        if pr.state is ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first_one()  # let one message through, in case some were lost
        if pr.match < self.log.last_index():
            # Even with nothing new to send: messages may have been lost while ``next`` moved on
            # optimistically, and the follower's answer to an empty AppendEntries tells us (etcd).
            self._send_append(m.sender, send_if_empty=True)
        if m.sender in self.config.voters and self._reads.ack(m.sender, m.read_seq):
            self._reads.release(self.id, self.config.voters)

    def _maybe_commit(self) -> bool:
        """§5.3 and §5.4.2: commit the largest index a majority holds durably, but count replicas
        only for an entry of the current term (Figure 8); earlier entries commit with it."""
        acked = {peer: pr.match for peer, pr in self._progress.items()}
        index = quorum.majority_index(self.config.voters, acked)
        if index <= self.log.committed:
            return False
        planted = PLANT_COMMIT_PREVIOUS_TERM in self.options.plants
        if self.log.term(index) != self.term and not planted:
            return False
        self.log.commit_to(index)
        self._after_commit()
        return True

    def _after_commit(self) -> None:
        self._uncommitted.committed_to(self.log.committed)
        if self.committed_in_term():
            for ctx in self._reads.take_waiting_for_commit():
                self._queue_read(ctx)
        if self._configs.current_index <= self.log.committed and self.id not in self.config.ids:
            # Our removal is committed: hand over by stepping down (hashicorp does the same).
            self._become_follower(self.term, None)

    def _send_append(self, to: NodeId, send_if_empty: bool = False) -> bool:
        """Send ``to`` the entries it lacks (or an empty AppendEntries carrying the commit index).
        Returns whether a message with entries went out."""
        pr = self._progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        if prev_term is None:
            self._send_snapshot(to, pr)
            return False
        entries: list[Entry] = []
        if pr.next <= self.log.last_index():
            entries = self.log.entries(
                pr.next, self.log.last_index() + 1, self.options.append_bytes_max
            )
        if not entries and not send_if_empty:
            return False
        if entries:
            pr.sent_entries(entries[-1].index, sum(entry_size(e) for e in entries))
        elif pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        pr.commit_sent = self.log.committed
        self._send(
            AppendEntries(
                self.term, self.id, to, prev_index, prev_term, tuple(entries), self.log.committed
            )
        )
        return bool(entries)

    def _send_snapshot(self, to: NodeId, pr: Progress) -> None:
        if not pr.recent_active:
            return  # do not stream a snapshot to a peer that may be gone (etcd)
        meta = self._latest_snapshot
        assert meta is not None and meta.index >= self.log.first_index() - 1, (
            "the log was compacted past the latest snapshot"
        )
        pr.become_snapshot(meta.index)
        self._send(InstallSnapshot(self.term, self.id, to, meta))

    def _broadcast_append(self, send_if_empty: bool) -> None:
        committed = self.log.committed
        for peer, pr in self._progress.items():
            if peer != self.id:
                self._send_append(peer, send_if_empty and pr.commit_sent < committed)

    def _broadcast_heartbeat(self) -> None:
        me = self.config.get(self.id)
        address = me.address if me is not None else ""
        for peer, pr in self._progress.items():
            if peer != self.id:
                commit = min(pr.match, self.log.committed)
                self._send(Heartbeat(self.term, self.id, peer, commit, self._reads.seq, address))

    def _check_can_propose(self, size_bytes: int) -> None:
        if size_bytes > self.options.entry_bytes_max:
            raise ProposalTooLarge(
                f"a proposal of {size_bytes} B exceeds {self.options.entry_bytes_max} B"
            )
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self.lead_transferee is not None:
            raise ProposalDropped("leadership transfer in progress")
        if self._uncommitted.size_bytes + size_bytes > self.options.uncommitted_bytes_max:
            raise ProposalDropped("too many uncommitted entries; the followers are behind")

    def _append_as_leader(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        for entry in entries:
            self._uncommitted.add(entry.index, entry_size(entry))
        self._configs_appended(entries)
        self._needs_broadcast = True
        if PLANT_ACK_BEFORE_SYNC in self.options.plants:
            self._progress[self.id].maybe_update(self.log.last_index())
            self._maybe_commit()

    # --- follower -----------------------------------------------------------------------------
    def _step_follower(self, m: Message) -> None:
        if isinstance(m, AppendEntries):
            self.election_elapsed = 0
            self.leader = m.sender
            self._handle_append(m)
        elif isinstance(m, Heartbeat):
            self.election_elapsed = 0
            self.leader = m.sender
            self.log.commit_to(min(m.commit, self.log.last_index()))
            reply = HeartbeatReply(self.term, self.id, m.sender, m.read_seq, self.log.last_index())
            self._send(reply)
        elif isinstance(m, InstallSnapshot):
            self.election_elapsed = 0
            self.leader = m.sender
            self._handle_snapshot(m)
        elif isinstance(m, TimeoutNow):
            if self._promotable():
                self._start_election(transfer=True)  # thesis §3.10: campaign at once
        else:
            self._drop(f"{type(m).__name__}_as_follower")

    def _handle_append(self, m: AppendEntries) -> None:
        if m.prev_index < self.log.committed:
            # Entries up to our commit index are known to match (Log Matching); acknowledge them.
            self._send(AppendEntriesReply(self.term, self.id, m.sender, True, self.log.committed))
            return
        if not self.log.match_term(m.prev_index, m.prev_term):
            hint = self.log.find_conflict_by_term(
                min(m.prev_index, self.log.last_index()), m.prev_term
            )
            hint_term = self.log.term(hint) or 0
            reply = AppendEntriesReply(
                self.term, self.id, m.sender, False, m.prev_index, hint_term, hint
            )
            self._send(reply)
            return
        conflict = self.log.find_conflict(m.entries)
        if conflict:
            if conflict <= self.log.committed:
                self._drop("conflicts_with_committed_entry")  # never truncate committed entries
                return
            new = m.entries[conflict - m.prev_index - 1 :]
            self.log.append(new)
            self._configs_appended(new)
        last_new = m.prev_index + len(m.entries)
        self.log.commit_to(min(m.commit, last_new))
        reply = AppendEntriesReply(self.term, self.id, m.sender, True, last_new)
        self._send(reply, early=PLANT_ACK_BEFORE_SYNC in self.options.plants)

    def _handle_snapshot(self, m: InstallSnapshot) -> None:
        meta = m.meta
        if meta.index <= self.log.committed:
            self._send(InstallSnapshotReply(self.term, self.id, m.sender, self.log.committed, True))
            return
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # we already hold its entries; just catch up commit
        else:
            self.log.restore(meta)
            self._configs.restored(meta)
            self._config_changed = True
        self._send(InstallSnapshotReply(self.term, self.id, m.sender, meta.index, True))

    # --- configurations ------------------------------------------------------------------------
    def _load_configs(self) -> None:
        index, last = self.log.first_index(), self.log.last_index()
        while index <= last:
            batch = self.log.entries(index, last + 1, _CONFIG_SCAN_BYTES_MAX)
            self._configs.appended(batch)
            index = batch[-1].index + 1

    def _configs_appended(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """A configuration takes effect when appended; a truncation reverts to the latest one
        still in the log."""
        if self._configs.appended(entries):
            self._config_changed = True
            if self.role is Role.LEADER:
                self._leader_config_changed()

    def _leader_config_changed(self) -> None:
        last = self.log.last_index()
        for server in self.config.servers:
            if server.id not in self._progress:
                self._progress[server.id] = self._new_progress(last + 1)
        for peer in list(self._progress):
            if peer not in self.config.ids and peer != self.id:
                del self._progress[peer]
                self._reads.forget(peer)
        self._reads.config_changed(self.id, self.config.voters)
        if self.lead_transferee is not None and self.lead_transferee not in self.config.voters:
            self.lead_transferee = None
        if self._maybe_commit():  # the majority may be smaller now
            self._needs_empty_broadcast = True

    # --- ReadIndex ----------------------------------------------------------------------------
    def _queue_read(self, ctx: int) -> None:
        if self.config.voters <= {self.id}:
            self._reads.serve_now(ctx, self.log.committed)
        else:
            self._reads.queue(ctx, self.log.committed)

    # --- plumbing -------------------------------------------------------------------------------
    def _send(self, m: Message, early: bool | None = None) -> None:
        if early is None:
            early = self.role is Role.LEADER
        (self._early if early else self._late).append(m)

    def _durable_index(self) -> int:
        return self.log.unstable_offset - 1 if self.log.pending_snapshot is None else 0

    def _soft_state_changed(self) -> bool:
        last = self._last_soft  # compared field by field: has_ready() runs often, allocates nothing
        return last.role is not self.role or last.leader != self.leader or last.term != self.term

    def _term_or_vote_dirty(self) -> bool:
        p = self._persisted
        return p.term != self.term or p.vote != self.vote

    def _hard_state_dirty(self, entries: bool) -> bool:
        if self._term_or_vote_dirty():
            return True
        return entries and self._persisted.commit != self.log.committed

    def _check_invariants(self) -> None:
        """Facts that hold after every input (docs/raft.md, "Invariants"). They stay on in
        production, so they are a handful of comparisons and allocate nothing: a failure is a bug
        in the core, and the node stops rather than persist or send anything built on it."""
        log = self.log
        committed, term, vote = log.committed, self.term, self.vote
        assert log.applied <= committed <= log.last_index(), (
            "applied <= committed <= last index",
            log.applied,
            committed,
            log.last_index(),
        )
        if term != self._checked_term or vote != self._checked_vote:
            self._check_term_and_vote()
        if committed != self._checked_commit:
            assert committed > self._checked_commit, ("the commit index went back", committed)
            self._checked_commit = committed
        if self.role is Role.LEADER:
            me = self._progress.get(self.id)
            assert me is not None, "a leader tracks itself in its progress"
            assert self.leader == self.id and vote == self.id, "a leader voted for itself"
            assert me.match <= self._durable_index() or self._planted_ack_before_sync, (
                "a leader counts only its durable entries",
                me.match,
                self._durable_index(),
            )
        else:
            assert not self._progress and self.lead_transferee is None, "only a leader tracks peers"
            assert self.role is not Role.CANDIDATE or vote == self.id, (
                "a candidate votes for itself"
            )
        assert self._uncommitted.size_bytes >= 0, self._uncommitted.size_bytes

    def _check_term_and_vote(self) -> None:
        """Terms never go back; once cast, a vote does not change within its term."""
        term, vote = self.term, self.vote
        assert term >= self._checked_term, ("the term went back", self._checked_term, term)
        if term == self._checked_term and self._checked_vote is not None:
            assert vote == self._checked_vote, ("a second vote in one term", self._checked_vote)
        self._checked_term, self._checked_vote = term, vote

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def _assert_no_outstanding_ready(self) -> None:
        assert self._outstanding is None, "advance() the outstanding Ready first"
