//! The HTTP API's calls, and the status it reports.

use super::*;

impl Actor {
    pub(super) fn on_api(&mut self, call: ApiCall) {
        match call {
            ApiCall::AddSeed(artifact, reply) => {
                // A download of the same artifact may be running: the endpoint closes its
                // links as the new swarm replaces it.
                let id = self.add_artifact(*artifact, None);
                let _ = reply.send(self.share_reply(id));
            }
            ApiCall::TicketFor(id, reply) => {
                if self.removing.contains(&id) {
                    let _ = reply.send(Err(ApiError::BeingRemoved));
                    return;
                }
                self.touch(&id);
                let result = match self.entries.get(&id) {
                    Some(_) if self.is_complete(&id) => Ok(self.share_reply(id)),
                    Some(_) => Err(ApiError::StillDownloading),
                    None => Err(ApiError::NotHeld),
                };
                let _ = reply.send(result);
            }
            ApiCall::Get(ticket, reply) => {
                let id = ticket.id();
                if self.removing.contains(&id) {
                    let _ = reply.send(Err(ApiError::BeingRemoved));
                    return;
                }
                if !self.entries.contains_key(&id) {
                    let fetching = self
                        .entries
                        .iter()
                        .filter(|(id, e)| e.error.is_none() && !self.is_complete(id))
                        .count();
                    if fetching >= self.settings.max_fetches {
                        let _ =
                            reply.send(Err(ApiError::TooManyFetches(self.settings.max_fetches)));
                        return;
                    }
                    let size = ticket.size();
                    if let Some(max) = self.settings.max_storage {
                        if size > max {
                            let _ = reply.send(Err(ApiError::TooBig { size, max }));
                            return;
                        }
                        if !self.enforce_quota(size) {
                            let _ = reply.send(Err(ApiError::NoRoom { size, max }));
                            return;
                        }
                    }
                    if let Err(err) = tickets::save(self.store.dir(), &ticket) {
                        let _ = reply.send(Err(ApiError::TicketNotSaved(err)));
                        return;
                    }
                    self.join_through_hints(&ticket);
                    self.add_download(ticket);
                }
                self.touch(&id);
                let _ = reply.send(Ok(GetReply { id: id.to_string() }));
            }
            ApiCall::Status(reply) => {
                let _ = reply.send(self.status());
            }
            ApiCall::Artifact(id, reply) => {
                let answer = self.entries.get(&id).and_then(|e| {
                    let changes = e.changes.subscribe();
                    let generation = changes.borrow().generation;
                    let artifact = self.artifact_status(&id)?;
                    Some((
                        ArtifactReply {
                            generation,
                            artifact,
                        },
                        changes,
                    ))
                });
                let _ = reply.send(answer);
            }
            ApiCall::Pin(id, pinned, reply) => {
                let _ = reply.send(self.set_pinned(id, pinned));
            }
            ApiCall::Remove(id, only_incomplete, reply) => {
                if only_incomplete && self.is_complete(&id) {
                    let _ = reply.send(Err(ApiError::Complete));
                    return;
                }
                self.remove_artifact(id, reply);
            }
            ApiCall::Repair(id, path, reply) => match self.entries.get(&id) {
                Some(e) => {
                    if let Err(err) = e.disk.send(DiskOp::Repair(path, reply)) {
                        tracing::error!(%id, "cannot repair: {err}");
                    }
                }
                None => {
                    let _ = reply.send(Err(ApiError::NotHeld));
                }
            },
            ApiCall::Export(id, path, replace, reply) => match self.entries.get_mut(&id) {
                Some(e)
                    if self
                        .ep
                        .swarm(&id)
                        .or(e.dormant.as_ref())
                        .is_some_and(Swarm::is_complete) =>
                {
                    e.last_used = TokioInstant::now();
                    let _ = e.disk.send(DiskOp::Export(path, replace, reply));
                }
                Some(_) => {
                    let _ = reply.send(Err(ApiError::NotComplete));
                }
                None => {
                    let _ = reply.send(Err(ApiError::NotHeld));
                }
            },
        }
    }

    pub(super) fn share_reply(&self, id: ContentId) -> ShareReply {
        let ticket = self
            .entries
            .get(&id)
            .map(|e| e.ticket.to_string())
            .unwrap_or_default();
        let size = self
            .entries
            .get(&id)
            .map(|e| e.ticket.size())
            .unwrap_or_default();
        ShareReply {
            id: id.to_string(),
            size,
            ticket,
        }
    }

    pub(super) fn status(&self) -> Status {
        let artifacts = self
            .entries
            .keys()
            .filter_map(|id| self.artifact_status(id))
            .collect();
        let members = self
            .gossip
            .membership
            .members()
            .map(|m| MemberStatus {
                peer_id: m.id.to_string(),
                status: gossip::status_word(m.status).to_string(),
                zone: m.state.zone.clone(),
                addr: m.state.addrs.first().cloned(),
                upload_capacity: m.state.upload_capacity,
                load: m.state.load,
                holds: m
                    .state
                    .holdings
                    .iter()
                    .map(|h| HoldingStatus {
                        id: h.id.to_string(),
                        complete: h.complete,
                    })
                    .collect(),
            })
            .collect();
        Status {
            peer_id: self.settings.peer_id.to_string(),
            listen: self.settings.listen.to_string(),
            advertise: self.settings.advertise.to_string(),
            zone: self.gossip.membership.state().zone.clone(),
            signal_url: self.settings.signal_url.clone(),
            artifacts,
            members,
            connections: self.conns.len(),
        }
    }

    /// One artifact's status, if the node holds or fetches it.
    pub(super) fn artifact_status(&self, id: &ContentId) -> Option<ArtifactStatus> {
        let e = self.entries.get(id)?;
        let swarm = self.swarm(id)?;
        let stats = swarm.stats();
        let peers = stats
            .links
            .iter()
            .filter_map(|l| {
                let peer = l.peer?;
                let conn = self.conns.get(&self.ep.link_conn(l.link)?)?;
                Some(PeerStatus {
                    peer_id: peer.to_string(),
                    zone: self
                        .gossip
                        .membership
                        .member(&peer)
                        .map(|m| m.state.zone.clone()),
                    addr: conn.remote.to_string(),
                    pieces: l.peer_pieces,
                    downloaded: l.downloaded,
                    uploaded: l.uploaded,
                })
            })
            .collect();
        let now = self.now();
        let sources = e
            .addrs
            .iter()
            .map(|(addr, s)| SourceStatus {
                addr: addr.to_string(),
                state: if s.never {
                    "never"
                } else if s.conn.is_some() {
                    "linked"
                } else if s.dialing {
                    "dialing"
                } else if s.dialable(now) {
                    "waiting"
                } else {
                    "retrying"
                }
                .to_string(),
                failures: s.failures,
                error: e.dial_errors.get(addr).cloned(),
            })
            .collect();
        Some(ArtifactStatus {
            id: id.to_string(),
            name: e.ticket.name().map(str::to_string),
            size: e.ticket.size(),
            pieces: stats.pieces,
            have_pieces: stats.have,
            have_bytes: stats.have_bytes,
            complete: swarm.is_complete(),
            has_manifest: stats.has_manifest,
            downloaded: stats.downloaded,
            uploaded: stats.uploaded,
            download_rate: e.rate.down as u64,
            upload_rate: e.rate.up as u64,
            peers,
            banned: e.banned.iter().map(ToString::to_string).collect(),
            error: e.error.as_ref().map(ToString::to_string),
            corrupt_on_disk: e.corrupt_on_disk,
            pinned: self.pins.contains(id),
            serving: e.dormant.is_none() && e.error.is_none(),
            ticket: e.ticket.to_string(),
            sources,
        })
    }

    /// A ticket's node hints double as ways into the cluster when we know no member yet.
    pub(super) fn join_through_hints(&mut self, ticket: &Ticket) {
        if self.gossip.membership.present_count() > 0 {
            return;
        }
        let addrs: Vec<String> = ticket
            .hints()
            .iter()
            .filter_map(|h| match h {
                Hint::Node(addr) if *addr != self.settings.advertise => Some(addr.to_string()),
                _ => None,
            })
            .collect();
        let now = self.now();
        self.gossip.membership.join(now, addrs);
        self.drive_gossip();
    }
}
