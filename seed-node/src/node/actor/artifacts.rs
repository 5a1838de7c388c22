//! The artifacts the actor holds: adding seeds and downloads, their swarm settings and
//! tickets, their storage (disk results and actions), and what the node advertises to the
//! cluster about them.

use super::*;

impl Actor {
    /// Advertises what this node holds and how loaded its uplink is.
    pub(super) fn publish_state(&mut self) {
        let holdings = self
            .entries
            .iter()
            .filter(|(_, e)| e.error.is_none() && e.dormant.is_none())
            .map(|(id, _)| Holding {
                id: *id,
                complete: self.is_complete(id),
            })
            .collect();
        let load = match self.settings.upload_cap {
            Some(cap) if cap > 0 => {
                let up: f64 = self.entries.values().map(|e| e.rate.up).sum();
                // In steps of 25%, so small wobbles are not news.
                ((up / cap as f64 * 4.0).round() as u8).min(4) * 25
            }
            _ => 0,
        };
        self.gossip.publish(holdings, load);
        self.drive_gossip();
    }

    /// A swarm's settings (a native node's preset; `origin`: we hold it whole) and seed.
    pub(super) fn config(&mut self, origin: bool) -> (SwarmConfig, u64) {
        let cfg = presets::native(
            self.settings.peer_id,
            Some(self.settings.advertise.port()),
            self.settings.upload_cap,
            origin,
        );
        self.next_seed = self.next_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        (cfg, self.next_seed)
    }

    /// Starts serving (and, if incomplete, fetching) a stored artifact.
    pub(super) fn add_artifact(&mut self, artifact: Artifact, saved: Option<Ticket>) -> ContentId {
        let id = artifact.id();
        let ticket = saved.unwrap_or_else(|| self.ticket_for(&artifact));
        let (cfg, seed) = self.config(artifact.have().is_complete());
        let swarm = Swarm::with_manifest(
            cfg,
            artifact.manifest().clone(),
            artifact.have().clone(),
            self.now(),
            seed,
        );
        let disk = disk::spawn(
            self.store.clone(),
            id,
            self.next_generation,
            Some(artifact),
            self.inputs.clone(),
        );
        self.insert(id, swarm, disk, ticket);
        id
    }

    /// Starts fetching an artifact the store does not have yet.
    pub(super) fn add_download(&mut self, ticket: Ticket) {
        let id = ticket.id();
        let (cfg, seed) = self.config(false);
        let swarm = Swarm::new(cfg, &ticket, self.now(), seed);
        let disk = disk::spawn(
            self.store.clone(),
            id,
            self.next_generation,
            None,
            self.inputs.clone(),
        );
        if let Some(m) = swarm.manifest() {
            // Tiny artifacts need no manifest from anyone; create them at once.
            let _ = disk.send(DiskOp::Create(m.clone(), ticket.name().map(str::to_string)));
        }
        self.insert(id, swarm, disk, ticket);
    }

    /// An artifact's swarm, served or dormant.
    pub(super) fn swarm(&self, id: &ContentId) -> Option<&Swarm> {
        self.ep
            .swarm(id)
            .or_else(|| self.entries.get(id)?.dormant.as_ref())
    }

    pub(super) fn is_complete(&self, id: &ContentId) -> bool {
        self.swarm(id).is_some_and(Swarm::is_complete)
    }

    pub(super) fn insert(&mut self, id: ContentId, swarm: Swarm, disk: DiskHandle, ticket: Ticket) {
        let complete = swarm.is_complete();
        let generation = self.next_generation;
        self.next_generation += 1;
        let mut addrs = BTreeMap::new();
        let hinted = ticket.hints().iter().filter_map(|h| match h {
            Hint::Node(addr) => Some(*addr),
            Hint::Signal(_) => None,
        });
        for addr in hinted.chain(self.settings.peers.iter().copied()) {
            let is_self = addr == self.settings.advertise || addr == self.settings.listen;
            addrs.insert(
                addr,
                AddrState {
                    never: is_self,
                    pinned: true,
                    ..AddrState::default()
                },
            );
        }
        let now = self.now();
        self.ep.add_swarm(now, swarm);
        self.entries.insert(
            id,
            Entry {
                disk,
                generation,
                ticket,
                addrs,
                banned: Vec::new(),
                error: None,
                rate: Rate::default(),
                added: TokioInstant::now(),
                dial_errors: BTreeMap::new(),
                changes: tokio::sync::watch::channel(Change::default()).0,
                corrupt_on_disk: 0,
                fetched: !complete,
                last_used: TokioInstant::now(),
                completed_at: None,
                last_upload: None,
                dormant: None,
            },
        );
        self.apply_origin_policy();
        self.drive();
        self.publish_state();
        self.dial_missing();
        if let Some(rtc) = &self.settings.rtc
            && let Some(entry) = self.entries.get(&id)
        {
            let servers = entry
                .ticket
                .hints()
                .iter()
                .filter_map(|h| match h {
                    Hint::Signal(url) => Some(url.clone()),
                    Hint::Node(_) => None,
                })
                .collect();
            rtc.send(RtcCommand::Join { swarm: id, servers });
        }
    }

    /// Stops fetching or seeding an artifact, forgets it, and deletes its files; answers on
    /// `reply` once they are gone.
    pub(super) fn remove_artifact(
        &mut self,
        id: ContentId,
        reply: tokio::sync::oneshot::Sender<Result<RemoveReply, ApiError>>,
    ) {
        let Some(entry) = self.entries.remove(&id) else {
            let _ = reply.send(Err(ApiError::NotHeld));
            return;
        };
        self.removing.insert(id);
        if self.pins.contains(&id) {
            let mut pins = self.pins.clone();
            pins.remove(&id);
            if let Err(err) = quota::save_pins(self.store.dir(), &pins) {
                tracing::warn!(%id, "cannot save the pins: {err}");
            }
            self.pins = pins;
        }
        let now = self.now();
        let was_complete = self
            .ep
            .remove_swarm(now, &id)
            .as_ref()
            .or(entry.dormant.as_ref())
            .is_some_and(Swarm::is_complete);
        self.drive();
        if let Some(rtc) = &self.settings.rtc {
            rtc.send(RtcCommand::Leave(id));
        }
        // Gossip stops naming us as a holder.
        self.publish_state();
        let store = self.store.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            // Dropping the disk worker's handle flushes and joins it, which releases the
            // artifact, so its files can go.
            let removed = tokio::task::spawn_blocking(move || {
                drop(entry);
                tickets::remove(store.dir(), &id).map_err(|e| e.to_string())?;
                store.remove(id).map_err(|e| crate::error_chain::chain(&e))
            })
            .await;
            let result = match removed {
                Ok(Ok(_)) => Ok(RemoveReply {
                    id: id.to_string(),
                    was_complete,
                }),
                Ok(Err(e)) => Err(ApiError::RemoveFailed(e)),
                Err(e) => Err(ApiError::RemoveFailed(e.to_string())),
            };
            if let Err(err) = &result {
                tracing::warn!(%id, "{err}");
            }
            let _ = inputs.send(Input::Removed(id));
            let _ = reply.send(result);
        });
        tracing::info!(%id, "removed");
    }

    /// Stops serving fetched artifacts that enough other nodes serve (`--seed-copies`: that
    /// many whole holders come before us in a shared order) or that completed long enough ago
    /// (`--seed-time`): their swarm leaves the endpoint (links close, gossip stops naming us),
    /// the data stays for our own use.
    pub(super) fn retire_seeds(&mut self, at: TokioInstant) {
        let (copies, time) = (self.settings.seed_copies, self.settings.seed_time);
        if copies.is_none() && time.is_none() {
            return;
        }
        // The whole holders gossip knows of (us included) in an order every node computes
        // alike: the first `--seed-copies` keep serving, so the others do not all stop at
        // once.
        let me = self.settings.peer_id;
        let beaten = |id: &ContentId| {
            let rank = |peer: &PeerId| {
                let mut h = blake3::Hasher::new();
                h.update(id.as_bytes());
                h.update(peer.as_bytes());
                *h.finalize().as_bytes()
            };
            let mine = rank(&me);
            self.gossip
                .membership
                .members()
                .filter(|m| m.status == pollen_core::membership::Status::Alive)
                .filter(|m| m.state.holdings.iter().any(|h| h.id == *id && h.complete))
                .filter(|m| rank(&m.id) < mine)
                .count()
        };
        let retire: Vec<ContentId> = self
            .entries
            .iter()
            .filter(|(id, e)| e.fetched && e.dormant.is_none() && self.is_complete(id))
            .filter(|(id, e)| {
                copies.is_some_and(|n| beaten(id) >= n)
                    || time
                        .zip(e.completed_at)
                        .is_some_and(|(t, done)| done + t <= at)
            })
            .map(|(id, _)| *id)
            .collect();
        if retire.is_empty() {
            return;
        }
        let now = self.now();
        for id in retire {
            let swarm = self.ep.remove_swarm(now, &id);
            if let Some(e) = self.entries.get_mut(&id) {
                e.dormant = swarm;
            }
            if let Some(rtc) = &self.settings.rtc {
                rtc.send(RtcCommand::Leave(id));
            }
            tracing::info!(%id, "no longer serving it (enough copies in the cluster, or its seeding time is over)");
        }
        self.drive();
        self.publish_state();
    }

    /// Sets each spreading artifact's policy from our upload capacity and its fetchers', as
    /// gossip tells them ([`pollen_core::policy::origin`]): an origin no faster than its
    /// fetchers sends each piece once however few they are.
    pub(super) fn apply_origin_policy(&mut self) {
        let own = self.settings.upload_cap;
        // Each artifact's fetchers' capacities, from one pass over the members.
        let mut fetchers: BTreeMap<ContentId, Vec<u64>> = BTreeMap::new();
        let mut everyone = Vec::new();
        for m in self.gossip.membership.members() {
            if m.status != pollen_core::membership::Status::Alive {
                continue;
            }
            everyone.push(m.state.upload_capacity);
            for h in m.state.holdings.iter().filter(|h| !h.complete) {
                if self.entries.contains_key(&h.id) {
                    fetchers
                        .entry(h.id)
                        .or_default()
                        .push(m.state.upload_capacity);
                }
            }
        }
        let ids: Vec<ContentId> = self.entries.keys().copied().collect();
        for id in ids {
            let spreading = self.ep.swarm(&id).is_some_and(|s| s.config().spread_first);
            if !spreading {
                continue;
            }
            // Its fetchers; all members if gossip names none yet.
            let peers = fetchers.get(&id).unwrap_or(&everyone);
            let links = pollen_core::policy::origin::spread_first_min_links(own, peers);
            if let Some(s) = self.ep.swarm_mut(&id)
                && s.config().spread_first_min_links != links
            {
                s.set_spread_first_min_links(links);
            }
        }
    }

    /// The ticket this node hands out for an artifact it holds.
    pub(super) fn ticket_for(&self, artifact: &Artifact) -> Ticket {
        let m = artifact.manifest();
        let mut t =
            Ticket::new(m.id(), m.layout().size()).expect("a stored artifact has a valid size");
        if let Some(name) = artifact.name() {
            t = t.clone().with_name(name).unwrap_or(t);
        }
        t = t
            .clone()
            .with_hint(Hint::Node(self.settings.advertise))
            .unwrap_or(t);
        if let Some(url) = &self.settings.signal_url {
            t = t.clone().with_hint(Hint::Signal(url.clone())).unwrap_or(t);
        }
        t
    }

    pub(super) fn on_disk(&mut self, id: ContentId, result: DiskResult) {
        let now = self.now();
        // Reads and checks are no news for waiters; stores and failures are.
        let news = matches!(
            result,
            DiskResult::Written(..) | DiskResult::CreateFailed(_)
        );
        let (Some(entry), Some(swarm)) = (self.entries.get_mut(&id), self.ep.swarm_mut(&id)) else {
            return;
        };
        match result {
            DiskResult::Read(piece, data) => {
                if data.is_none() && swarm.have().contains(piece) {
                    tracing::error!(%id, piece, "a held piece no longer verifies on disk: dropped, fetching it again");
                    entry.corrupt_on_disk = entry.corrupt_on_disk.saturating_add(1);
                    self.settings.metrics.pieces_corrupt_on_disk.inc();
                }
                swarm.handle_piece_read(now, piece, data);
            }
            DiskResult::ReadFailed(piece) => swarm.handle_piece_read_failed(now, piece),
            DiskResult::Checked(checked) => swarm.handle_piece_checked(now, checked),
            DiskResult::Written(piece, Ok(())) => {
                swarm.handle_piece_stored(now, piece, Stored::Written);
            }
            DiskResult::Written(piece, Err(err)) => {
                tracing::error!(%id, piece, "cannot store: {err}");
                entry.error = Some(err);
                swarm.handle_piece_stored(now, piece, Stored::Failed);
                self.stop_fetching(id);
            }
            DiskResult::CreateFailed(err) => {
                tracing::error!(%id, "cannot create the artifact: {err}");
                entry.error = Some(err);
                self.stop_fetching(id);
            }
        }
        if news {
            self.changed(&id);
        }
    }

    /// After a storage failure: close the artifact's links and stop dialing for it.
    pub(super) fn stop_fetching(&mut self, id: ContentId) {
        let now = self.now();
        self.ep.unlink_swarm(now, &id);
        if let Some(entry) = self.entries.get_mut(&id) {
            for state in entry.addrs.values_mut() {
                state.never = true;
            }
        }
    }

    pub(super) fn on_action(&mut self, id: ContentId, action: Action) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let sent = match action {
            Action::ReadPiece { piece } => entry.disk.send(DiskOp::Read(piece)),
            Action::CheckPiece(check) => entry.disk.check(check),
            Action::StorePiece { piece, data } => entry.disk.send(DiskOp::Write(piece, data)),
            Action::StoreManifest(m) => {
                let name = entry.ticket.name().map(str::to_string);
                entry.disk.send(DiskOp::Create(m, name))
            }
            // The endpoint keeps link closes to itself.
            Action::Disconnect { .. } => Ok(()),
        };
        if let Err(err) = sent {
            // The disk worker is gone: nothing sent to it will ever complete.
            tracing::error!(%id, "the disk worker stopped; no longer fetching");
            entry.error.get_or_insert(err);
            self.stop_fetching(id);
        }
    }

    pub(super) fn on_event(&mut self, id: ContentId, event: Event) {
        if !matches!(event, Event::PieceVerified { .. }) {
            self.changed(&id);
        }
        match event {
            Event::PeerConnected { peer, .. } => tracing::debug!(%id, %peer, "peer linked"),
            Event::PeerBanned { peer, piece } => {
                tracing::warn!(%id, %peer, ?piece, "banned a peer that sent data failing verification");
                self.settings.metrics.peers_banned.inc();
                if piece.is_some() {
                    self.settings.metrics.pieces_failed.inc();
                }
                if let Some(e) = self.entries.get_mut(&id) {
                    e.banned.push(peer);
                }
            }
            Event::Complete => {
                tracing::info!(%id, "complete");
                if let Some(e) = self.entries.get_mut(&id)
                    && e.fetched
                {
                    e.completed_at.get_or_insert_with(TokioInstant::now);
                    // Just fetched: in use (its get is about to write it out).
                    e.last_used = TokioInstant::now();
                    let m = &self.settings.metrics;
                    m.fetches_completed.inc();
                    m.fetch_duration.observe(e.added.elapsed().as_secs_f64());
                }
                self.publish_state();
            }
            Event::ManifestVerified => tracing::debug!(%id, "manifest verified"),
            Event::StoreFailed { piece } => tracing::debug!(%id, piece, "store failed"),
            Event::PieceVerified { .. } => {
                self.settings.metrics.pieces_verified.inc();
            }
        }
    }
}
