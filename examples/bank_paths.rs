//! One half of a deadlock that only two processes together show.
//!
//! The bank has two locks, `accounts` and `audit`. Its `transfer` path takes `accounts`, then
//! `audit` to log the transfer; its `reconcile` path takes `audit`, then `accounts`. Each path
//! alone is fine, and a test binary that runs only one of them learns only one order, so no
//! single process ever sees an inversion. A process running both could deadlock.
//! `lockwatch run` merges the lock hierarchies of every process it ran (each writes its own,
//! `LOCKWATCH_ORDER_GRAPH=<dir>/order-%p.json`) and reports the inversion:
//!
//! `lockwatch run -- sh -c 'target/debug/examples/bank_paths transfer; target/debug/examples/bank_paths reconcile'`
//!
//! Both runs create the locks on the same lines, so they are the same lock classes.

use lockwatch::Mutex;

struct Bank {
    accounts: Mutex<Vec<i64>>,
    audit: Mutex<Vec<String>>,
}

impl Bank {
    fn new() -> Bank {
        Bank {
            accounts: Mutex::named("accounts", vec![100, 100]),
            audit: Mutex::named("audit", Vec::new()),
        }
    }

    fn transfer(&self, amount: i64) {
        let mut accounts = self.accounts.lock(); // bank_paths: transfer takes accounts
        accounts[0] -= amount;
        accounts[1] += amount;
        let mut audit = self.audit.lock(); // bank_paths: transfer takes audit
        audit.push(format!("moved {amount}"));
    }

    fn reconcile(&self) -> usize {
        let audit = self.audit.lock(); // bank_paths: reconcile takes audit
        let accounts = self.accounts.lock(); // bank_paths: reconcile takes accounts
        assert_eq!(accounts.iter().sum::<i64>(), 200);
        audit.len()
    }
}

fn main() {
    let bank = Bank::new();
    match std::env::args().nth(1).as_deref() {
        Some("transfer") => {
            bank.transfer(10);
            println!("transfer done");
        }
        Some("reconcile") => println!("reconciled {} entries", bank.reconcile()),
        _ => {
            eprintln!("usage: bank_paths transfer|reconcile");
            std::process::exit(2);
        }
    }
}
