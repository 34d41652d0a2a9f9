//! A bounded memory for the decision path: two generations of a hash map
//! behind a read-write lock. A lookup is a read lock and two map probes, with
//! no clock read and no bookkeeping; when the current generation holds half
//! the capacity it becomes the previous one and the older one is dropped.
//! Entries carry their own times, which the caller checks: this only bounds
//! how many are kept.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

/// At most `capacity` entries, the oldest half forgotten first.
#[derive(Debug)]
pub struct Generations<K, V> {
    half: usize,
    maps: RwLock<[HashMap<K, V>; 2]>,
}

impl<K: Hash + Eq, V: Clone> Generations<K, V> {
    /// An empty memory of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            half: (capacity / 2).max(1),
            maps: RwLock::new([HashMap::new(), HashMap::new()]),
        }
    }

    /// The entry for `key`, if remembered (never, if the lock is poisoned:
    /// the caller then does the work the memory would have saved).
    pub fn get(&self, key: &K) -> Option<V> {
        let maps = self.maps.read().ok()?;
        let [current, previous] = &*maps;
        current.get(key).or_else(|| previous.get(key)).cloned()
    }

    /// Remembers `value` for `key`, replacing any older entry.
    pub fn insert(&self, key: K, value: V) {
        if let Ok(mut maps) = self.maps.write() {
            let [current, previous] = &mut *maps;
            previous.remove(&key);
            if current.len() >= self.half && !current.contains_key(&key) {
                *previous = std::mem::take(current);
            }
            current.insert(key, value);
        }
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &K) {
        if let Ok(mut maps) = self.maps.write() {
            for map in maps.iter_mut() {
                map.remove(key);
            }
        }
    }

    /// How many entries are remembered (tests).
    pub fn len(&self) -> usize {
        self.maps
            .read()
            .map_or(0, |m| m.iter().map(HashMap::len).sum())
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_remembers_the_newest_and_never_more_than_its_capacity() {
        let memo = Generations::new(4);
        for i in 0..100u32 {
            memo.insert(i, i * 10);
            assert!(memo.len() <= 4, "{} after {i}", memo.len());
            assert_eq!(memo.get(&i), Some(i * 10));
        }
        // The newest half-capacity at least is still there; the oldest not.
        assert_eq!(memo.get(&99), Some(990));
        assert_eq!(memo.get(&98), Some(980));
        assert_eq!(memo.get(&0), None);
        memo.insert(99, 1);
        assert_eq!(memo.get(&99), Some(1));
        memo.remove(&99);
        assert_eq!(memo.get(&99), None);
        // Replacing an entry of the previous generation keeps one copy.
        let memo = Generations::new(4);
        for i in 0..3u32 {
            memo.insert(i, i);
        }
        memo.insert(0, 7);
        assert_eq!(memo.get(&0), Some(7));
        assert!(memo.len() <= 4);
        assert!(!memo.is_empty());
    }
}
