//! A node's links by id, for the simulator: ids are handed out densely from 1, so a vector
//! indexed by id finds one in a single step, where a map would walk its nodes.

use pollen_core::swarm::LinkId;

/// Values of type `T` keyed by a node's link ids.
#[derive(Debug, Clone)]
pub struct LinkTable<T> {
    slots: Vec<Option<T>>,
    len: usize,
}

impl<T> Default for LinkTable<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<T> LinkTable<T> {
    /// Slot of `id`, if it can have one (ids start at 1).
    fn slot(id: LinkId) -> Option<usize> {
        usize::try_from(id.0).ok()?.checked_sub(1)
    }

    /// Sets the value of `id`, returning the one it replaces.
    ///
    /// # Panics
    /// For id 0, or an id so far beyond the others that its slot cannot be allocated.
    pub fn insert(&mut self, id: LinkId, value: T) -> Option<T> {
        let i = Self::slot(id).expect("link ids start at 1");
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        let old = self.slots[i].replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value of `id`.
    pub fn get(&self, id: LinkId) -> Option<&T> {
        self.slots.get(Self::slot(id)?)?.as_ref()
    }

    /// The value of `id`, to change.
    pub fn get_mut(&mut self, id: LinkId) -> Option<&mut T> {
        self.slots.get_mut(Self::slot(id)?)?.as_mut()
    }

    /// Whether `id` has a value.
    pub fn contains(&self, id: LinkId) -> bool {
        self.get(id).is_some()
    }

    /// Takes the value of `id` out.
    pub fn remove(&mut self, id: LinkId) -> Option<T> {
        let old = self.slots.get_mut(Self::slot(id)?)?.take();
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// How many ids have a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no id has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values, by id.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    /// The ids and their values, by id.
    pub fn iter(&self) -> impl Iterator<Item = (LinkId, &T)> {
        self.slots
            .iter()
            .zip(1..)
            .filter_map(|(v, id)| Some((LinkId(id), v.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_was_inserted_until_removed() {
        let mut t = LinkTable::default();
        assert!(t.is_empty());
        assert_eq!(t.insert(LinkId(3), 'c'), None);
        assert_eq!(t.insert(LinkId(1), 'a'), None);
        assert_eq!(t.insert(LinkId(3), 'C'), Some('c'));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(LinkId(3)), Some(&'C'));
        assert!(!t.contains(LinkId(2)));
        assert!(!t.contains(LinkId(0)));
        assert!(!t.contains(LinkId(99)));
        assert_eq!(t.values().copied().collect::<String>(), "aC");
        assert_eq!(
            t.iter().map(|(id, v)| (id.0, *v)).collect::<Vec<_>>(),
            [(1, 'a'), (3, 'C')]
        );
        assert_eq!(t.remove(LinkId(1)), Some('a'));
        assert_eq!(t.remove(LinkId(1)), None);
        assert_eq!(t.len(), 1);
        if let Some(v) = t.get_mut(LinkId(3)) {
            *v = 'x';
        }
        assert_eq!(t.values().copied().collect::<String>(), "x");
    }
}
