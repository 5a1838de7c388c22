//! Sharing and fetching artifacts, and what the page asks about them.

use pollen_core::{ContentId, Instant, Manifest, Ticket, swarm::Swarm};
use rand_core::Rng;

use super::{
    Driver, DriverError, LinkInfo, MAX_BROWSER_ARTIFACT, PieceMap, Progress, memory::Artifact,
};

impl Driver {
    /// Seeds `data`; returns its ticket (with `name`, if given).
    pub fn share(
        &mut self,
        now: Instant,
        data: Vec<u8>,
        name: Option<&str>,
    ) -> Result<Ticket, DriverError> {
        let manifest = Manifest::of(&data).map_err(|e| DriverError::Ticket(e.to_string()))?;
        self.share_hashed(now, manifest, data, name)
    }

    /// Seeds `data`, whose manifest the caller built from it (so that it could show
    /// progress while hashing); returns its ticket.
    pub fn share_hashed(
        &mut self,
        now: Instant,
        manifest: Manifest,
        data: Vec<u8>,
        name: Option<&str>,
    ) -> Result<Ticket, DriverError> {
        let size = data.len() as u64;
        if size > MAX_BROWSER_ARTIFACT {
            return Err(DriverError::TooLarge(size));
        }
        if manifest.layout().size() != size {
            return Err(DriverError::Ticket(format!(
                "the manifest is for {} bytes, not {size}",
                manifest.layout().size()
            )));
        }
        let mut ticket =
            Ticket::new(manifest.id(), size).map_err(|e| DriverError::Ticket(e.to_string()))?;
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            ticket = ticket
                .with_name(name)
                .map_err(|e| DriverError::Ticket(e.to_string()))?;
        }
        let id = manifest.id();
        if !self.is_complete(&id) {
            let pieces = manifest.layout().piece_count();
            let have = pollen_core::Bitfield::full(pieces);
            let seed = self.rng.next_u64();
            let swarm = Swarm::with_manifest(self.config(), manifest, have, now, seed);
            self.replace(now, swarm, ticket.clone(), data);
            if let Some(a) = self.artifacts.get_mut(&id) {
                a.sources = vec![PieceMap::LOCAL; pieces as usize];
            }
        }
        Ok(ticket)
    }

    /// Starts fetching the artifact `ticket` names (nothing happens if it is already held or
    /// being fetched).
    pub fn fetch(&mut self, now: Instant, ticket: &Ticket) -> Result<(), DriverError> {
        if ticket.size() > MAX_BROWSER_ARTIFACT {
            return Err(DriverError::TooLarge(ticket.size()));
        }
        if self.artifacts.contains_key(&ticket.id()) {
            return Ok(());
        }
        let seed = self.rng.next_u64();
        let swarm = Swarm::new(self.config(), ticket, now, seed);
        let size = ticket.size() as usize;
        let mut data = Vec::new();
        data.try_reserve_exact(size)
            .map_err(|_| DriverError::OutOfMemory(ticket.size()))?;
        data.resize(size, 0);
        self.replace(now, swarm, ticket.clone(), data);
        self.drive(now);
        Ok(())
    }

    fn replace(&mut self, now: Instant, swarm: Swarm, ticket: Ticket, data: Vec<u8>) {
        let id = swarm.id();
        // The endpoint closes the replaced swarm's links.
        self.ep.add_swarm(now, swarm);
        let pieces = pollen_core::PieceLayout::for_size(ticket.size())
            .map_or(0, |l| l.piece_count() as usize);
        self.artifacts.insert(
            id,
            Artifact {
                ticket,
                data,
                sources: vec![PieceMap::MISSING; pieces],
                senders: Vec::new(),
            },
        );
    }

    /// The artifacts held or being fetched.
    pub fn artifacts(&self) -> impl Iterator<Item = (&ContentId, &Ticket)> {
        self.artifacts.iter().map(|(id, a)| (id, &a.ticket))
    }

    /// Whether the artifact is held completely.
    pub fn is_complete(&self, id: &ContentId) -> bool {
        self.swarm(id).is_some_and(Swarm::is_complete)
    }

    /// The bytes of a complete artifact.
    pub fn bytes(&self, id: &ContentId) -> Option<&[u8]> {
        self.artifacts
            .get(id)
            .filter(|_| self.is_complete(id))
            .map(|a| &a.data[..])
    }

    /// Progress of an artifact.
    pub fn progress(&self, id: &ContentId) -> Option<Progress> {
        let a = self.artifacts.get(id)?;
        let swarm = self.swarm(id)?;
        let stats = swarm.stats();
        Some(Progress {
            have_bytes: stats.have_bytes,
            size: a.ticket.size(),
            have_pieces: stats.have,
            pieces: stats.pieces,
            peers: stats.links.iter().filter(|l| l.peer.is_some()).count(),
            downloaded: stats.downloaded,
            uploaded: stats.uploaded,
            complete: swarm.is_complete(),
        })
    }

    /// Which pieces are held and who sent them.
    pub fn piece_map(&self, id: &ContentId) -> Option<PieceMap> {
        let a = self.artifacts.get(id)?;
        Some(PieceMap {
            peers: a.senders.clone(),
            pieces: a.sources.clone(),
        })
    }

    /// The artifact's links and their counters.
    pub fn links(&self, id: &ContentId) -> Vec<LinkInfo> {
        self.swarm(id).map_or_else(Vec::new, |swarm| {
            swarm
                .stats()
                .links
                .iter()
                .map(|l| LinkInfo {
                    peer: l.peer,
                    peer_pieces: l.peer_pieces,
                    downloaded: l.downloaded,
                    uploaded: l.uploaded,
                })
                .collect()
        })
    }

    /// Stops sharing or fetching an artifact and closes its links.
    pub fn forget(&mut self, now: Instant, id: &ContentId) {
        if self.artifacts.remove(id).is_some() {
            self.ep.remove_swarm(now, id);
            self.drive(now);
        }
    }
}
