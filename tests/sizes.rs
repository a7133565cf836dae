//! Without feature `detect`, every primitive is a zero-cost wrapper over parking_lot: the same
//! size and alignment as the parking_lot type it wraps.
#![cfg(not(feature = "detect"))]

use std::mem::{align_of, size_of};

macro_rules! assert_same_layout {
    ($ours:ty, $theirs:ty) => {
        assert_eq!(
            size_of::<$ours>(),
            size_of::<$theirs>(),
            "size_of::<{}>() differs from size_of::<{}>()",
            stringify!($ours),
            stringify!($theirs),
        );
        assert_eq!(
            align_of::<$ours>(),
            align_of::<$theirs>(),
            "align_of::<{}>() differs from align_of::<{}>()",
            stringify!($ours),
            stringify!($theirs),
        );
    };
}

macro_rules! for_each_payload {
    ($check:ident) => {
        $check!(());
        $check!(u8);
        $check!(u64);
        $check!([u8; 100]);
        $check!(String);
        $check!(Vec<u64>);
        $check!(Box<dyn Fn() + Send>);
    };
}

#[test]
fn mutex_is_the_size_of_parking_lot_mutex() {
    macro_rules! check {
        ($t:ty) => {
            assert_same_layout!(lockwatch::Mutex<$t>, parking_lot::Mutex<$t>);
        };
    }
    for_each_payload!(check);
}

#[test]
fn rwlock_is_the_size_of_parking_lot_rwlock() {
    macro_rules! check {
        ($t:ty) => {
            assert_same_layout!(lockwatch::RwLock<$t>, parking_lot::RwLock<$t>);
        };
    }
    for_each_payload!(check);
}

#[test]
fn reentrant_mutex_is_the_size_of_parking_lot_reentrant_mutex() {
    macro_rules! check {
        ($t:ty) => {
            assert_same_layout!(
                lockwatch::ReentrantMutex<$t>,
                parking_lot::ReentrantMutex<$t>
            );
        };
    }
    for_each_payload!(check);
}

#[test]
fn condvar_is_the_size_of_parking_lot_condvar() {
    assert_same_layout!(lockwatch::Condvar, parking_lot::Condvar);
}

#[test]
fn guards_are_the_size_of_parking_lot_guards() {
    assert_same_layout!(
        lockwatch::MutexGuard<'static, u64>,
        parking_lot::MutexGuard<'static, u64>
    );
    assert_same_layout!(
        lockwatch::RwLockReadGuard<'static, u64>,
        parking_lot::RwLockReadGuard<'static, u64>
    );
    assert_same_layout!(
        lockwatch::RwLockWriteGuard<'static, u64>,
        parking_lot::RwLockWriteGuard<'static, u64>
    );
    assert_same_layout!(
        lockwatch::ReentrantMutexGuard<'static, u64>,
        parking_lot::ReentrantMutexGuard<'static, u64>
    );
}

#[test]
fn option_of_a_primitive_costs_what_parking_lots_does() {
    assert_same_layout!(
        Option<lockwatch::Mutex<u64>>,
        Option<parking_lot::Mutex<u64>>
    );
    assert_same_layout!(
        Option<lockwatch::RwLock<u64>>,
        Option<parking_lot::RwLock<u64>>
    );
}
