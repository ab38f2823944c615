//! Effective permissions: the intersection of a token's caveats, and the two
//! checks built on it (does a caveat narrow? does a request fit?).

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use super::caveat::{operation_name, Caveat, JobKind, Right};
use crate::clock::Timestamp;
use crate::resource::DomainId;
use crate::resource::{OperationKind, ResourceId};

/// What a token grants once all its caveats are applied. `None` means the
/// dimension is unrestricted (no caveat of that kind).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Permissions {
    pub rights: BTreeSet<Right>,
    pub resources: Option<BTreeSet<ResourceId>>,
    pub domains: Option<BTreeSet<DomainId>>,
    /// Sorted by operation code.
    pub operations: Option<Vec<OperationKind>>,
    pub expires_at: Option<Timestamp>,
    pub max_quantity: Option<u64>,
    /// Service tokens: the job kinds allowed.
    pub jobs: Option<BTreeSet<JobKind>>,
}

fn intersect<T: Ord + Clone>(current: &mut Option<BTreeSet<T>>, items: &[T]) {
    let given: BTreeSet<T> = items.iter().cloned().collect();
    *current = Some(match current.take() {
        Some(set) => set.intersection(&given).cloned().collect(),
        None => given,
    });
}

fn min_opt(current: &mut Option<u64>, value: u64) {
    *current = Some(current.map_or(value, |c| c.min(value)));
}

impl Permissions {
    /// A root token: every right, no restriction.
    pub fn unrestricted() -> Self {
        Permissions {
            rights: Right::ALL.into_iter().collect(),
            resources: None,
            domains: None,
            operations: None,
            expires_at: None,
            max_quantity: None,
            jobs: None,
        }
    }

    /// Intersect with one more caveat.
    pub fn apply(&mut self, caveat: &Caveat) {
        match caveat {
            Caveat::Rights(rights) => {
                let given: BTreeSet<Right> = rights.iter().copied().collect();
                self.rights = self.rights.intersection(&given).copied().collect();
            }
            Caveat::Resources(ids) => intersect(&mut self.resources, ids),
            Caveat::Domains(domains) => intersect(&mut self.domains, domains),
            Caveat::Operations(ops) => {
                let mut next: Vec<OperationKind> = match &self.operations {
                    Some(current) => current.iter().copied().filter(|k| ops.contains(k)).collect(),
                    None => ops.clone(),
                };
                next.sort_by_key(|k| k.code());
                next.dedup();
                self.operations = Some(next);
            }
            Caveat::ExpiresAt(t) => min_opt(&mut self.expires_at, *t),
            Caveat::MaxQuantity(q) => min_opt(&mut self.max_quantity, *q),
            Caveat::Jobs(kinds) => intersect(&mut self.jobs, kinds),
        }
    }

    pub fn of_caveats<'a>(caveats: impl IntoIterator<Item = &'a Caveat>) -> Self {
        let mut p = Permissions::unrestricted();
        for c in caveats {
            p.apply(c);
        }
        p
    }

    /// Whether another token may be derived from one with these permissions.
    pub fn can_delegate(&self) -> bool {
        self.rights.contains(&Right::Delegate)
    }

    /// `Err(reason)` when `caveat` claims anything these permissions do not
    /// already grant. Intersection would neutralize such a caveat anyway; we
    /// refuse it so that a token never says more than it means.
    pub fn check_narrows(&self, caveat: &Caveat) -> Result<(), String> {
        match caveat {
            Caveat::Rights(rights) => {
                let extra: Vec<&str> = rights.iter().filter(|r| !self.rights.contains(r)).map(|r| r.name()).collect();
                if !extra.is_empty() {
                    return Err(format!(
                        "rights {} are not among the rights already granted ({})",
                        extra.join(","),
                        names(self.rights.iter().map(|r| r.name()))
                    ));
                }
            }
            Caveat::Resources(ids) => {
                if let Some(current) = &self.resources {
                    if let Some(extra) = ids.iter().find(|id| !current.contains(id)) {
                        return Err(format!(
                            "resource {extra} is outside the {} resources already in scope",
                            current.len()
                        ));
                    }
                }
            }
            Caveat::Domains(domains) => {
                if let Some(current) = &self.domains {
                    if let Some(extra) = domains.iter().find(|d| !current.contains(d)) {
                        return Err(format!(
                            "domain {extra} is not among the domains already allowed ({})",
                            names(current.iter().map(|d| d.as_str()))
                        ));
                    }
                }
            }
            Caveat::Operations(ops) => {
                if let Some(current) = &self.operations {
                    if let Some(extra) = ops.iter().find(|k| !current.contains(k)) {
                        return Err(format!(
                            "operation kind {} is not among the kinds already allowed ({})",
                            operation_name(*extra),
                            names(current.iter().map(|k| operation_name(*k)))
                        ));
                    }
                }
            }
            Caveat::ExpiresAt(t) => {
                if let Some(current) = self.expires_at {
                    if *t > current {
                        return Err(format!("expiry {t} is later than the current expiry {current}"));
                    }
                }
            }
            Caveat::MaxQuantity(q) => {
                if let Some(current) = self.max_quantity {
                    if *q > current {
                        return Err(format!("max quantity {q} is larger than the current max quantity {current}"));
                    }
                }
            }
            Caveat::Jobs(kinds) => {
                if let Some(current) = &self.jobs {
                    if let Some(extra) = kinds.iter().find(|k| !current.contains(k)) {
                        return Err(format!(
                            "job kind {} is not among the kinds already allowed ({})",
                            extra.name(),
                            names(current.iter().map(|k| k.name()))
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// `Err(reason)` when a request (everything but its domain, which the
    /// caller scopes) falls outside these permissions at time `now`.
    pub fn check_request(
        &self,
        operation: OperationKind,
        right: Right,
        resource: Option<&ResourceId>,
        quantity: Option<u64>,
        now: Timestamp,
    ) -> Result<(), String> {
        if let Some(expiry) = self.expires_at {
            if now >= expiry {
                return Err(format!("token expired at {expiry}; the context timestamp is {now}"));
            }
        }
        if !self.rights.contains(&right) {
            return Err(format!(
                "missing right {right}: the token grants only {}",
                names(self.rights.iter().map(|r| r.name()))
            ));
        }
        if let Some(ops) = &self.operations {
            if !ops.contains(&operation) {
                return Err(format!(
                    "operation kind {} is not allowed: the token allows only {}",
                    operation_name(operation),
                    names(ops.iter().map(|k| operation_name(*k)))
                ));
            }
        }
        if let Some(scope) = &self.resources {
            match resource {
                Some(id) if scope.contains(id) => {}
                Some(id) => {
                    return Err(format!("resource {id} is outside the token's scope of {} resources", scope.len()))
                }
                None => {
                    return Err(format!(
                        "the token is limited to {} resources and the operation names none",
                        scope.len()
                    ))
                }
            }
        }
        if let (Some(max), Some(q)) = (self.max_quantity, quantity) {
            if q > max {
                return Err(format!("quantity {q} is over the token's max quantity {max}"));
            }
        }
        Ok(())
    }

    /// `Err(reason)` when a Domains caveat excludes `domain`.
    pub fn check_domain(&self, domain: &DomainId) -> Result<(), String> {
        match &self.domains {
            Some(allowed) if !allowed.contains(domain) => Err(format!(
                "domain {domain} is not among the token's domains ({})",
                names(allowed.iter().map(|d| d.as_str()))
            )),
            _ => Ok(()),
        }
    }

    /// Whether everything `self` grants is also granted by `other`.
    pub fn is_within(&self, other: &Permissions) -> bool {
        fn set_within<T: Ord>(a: &Option<BTreeSet<T>>, b: &Option<BTreeSet<T>>) -> bool {
            match (a, b) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => a.is_subset(b),
            }
        }
        fn bound_within(a: Option<u64>, b: Option<u64>) -> bool {
            match (a, b) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => a <= b,
            }
        }
        let ops_within = match (&self.operations, &other.operations) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => a.iter().all(|k| b.contains(k)),
        };
        self.rights.is_subset(&other.rights)
            && set_within(&self.resources, &other.resources)
            && set_within(&self.domains, &other.domains)
            && ops_within
            && bound_within(self.expires_at, other.expires_at)
            && bound_within(self.max_quantity, other.max_quantity)
            && set_within(&self.jobs, &other.jobs)
    }
}

fn names<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = items.collect();
    if all.is_empty() {
        "nothing".to_string()
    } else {
        all.join(",")
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rights:       {}", names(self.rights.iter().map(|r| r.name())))?;
        match &self.resources {
            None => writeln!(f, "resources:    any")?,
            Some(set) => {
                let ids: Vec<String> = set.iter().map(|id| id.to_string()).collect();
                writeln!(f, "resources:    {}", names(ids.iter().map(String::as_str)))?
            }
        }
        match &self.domains {
            None => writeln!(f, "domains:      any")?,
            Some(set) => writeln!(f, "domains:      {}", names(set.iter().map(|d| d.as_str())))?,
        }
        match &self.operations {
            None => writeln!(f, "operations:   any")?,
            Some(ops) => writeln!(f, "operations:   {}", names(ops.iter().map(|k| operation_name(*k))))?,
        }
        match self.expires_at {
            None => writeln!(f, "expires at:   never")?,
            Some(t) => writeln!(f, "expires at:   {t}")?,
        }
        if let Some(jobs) = &self.jobs {
            writeln!(f, "jobs:         {}", names(jobs.iter().map(|k| k.name())))?;
        }
        match self.max_quantity {
            None => write!(f, "max quantity: unlimited"),
            Some(q) => write!(f, "max quantity: {q}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caveats_intersect() {
        let p = Permissions::of_caveats(&[
            Caveat::Rights(vec![Right::Read, Right::Write]),
            Caveat::Rights(vec![Right::Write, Right::Delete]),
            Caveat::ExpiresAt(10),
            Caveat::ExpiresAt(20),
            Caveat::MaxQuantity(7),
            Caveat::MaxQuantity(3),
            Caveat::Operations(vec![OperationKind::Read, OperationKind::Update]),
            Caveat::Operations(vec![OperationKind::Update]),
            Caveat::Domains(vec![DomainId::new("a"), DomainId::new("b")]),
            Caveat::Domains(vec![DomainId::new("b"), DomainId::new("c")]),
        ]);
        assert_eq!(p.rights, [Right::Write].into_iter().collect());
        assert_eq!(p.expires_at, Some(10));
        assert_eq!(p.max_quantity, Some(3));
        assert_eq!(p.operations, Some(vec![OperationKind::Update]));
        assert_eq!(p.domains, Some([DomainId::new("b")].into_iter().collect()));
        assert_eq!(p.resources, None);
        assert!(p.is_within(&Permissions::unrestricted()));
        assert!(!Permissions::unrestricted().is_within(&p));
    }

    #[test]
    fn expiry_is_exclusive_and_quantity_inclusive() {
        let p = Permissions::of_caveats(&[Caveat::ExpiresAt(10), Caveat::MaxQuantity(5)]);
        assert!(p.check_request(OperationKind::Transfer, Right::Transfer, None, Some(5), 9).is_ok());
        assert!(p.check_request(OperationKind::Transfer, Right::Transfer, None, Some(6), 9).is_err());
        assert!(p.check_request(OperationKind::Transfer, Right::Transfer, None, Some(5), 10).is_err());
    }

    #[test]
    fn narrowing_checks_each_dimension() {
        let p = Permissions::of_caveats(&[Caveat::Resources(vec![ResourceId::of_encoding(b"x")])]);
        assert!(p.check_narrows(&Caveat::Resources(vec![])).is_ok());
        assert!(p.check_narrows(&Caveat::Resources(vec![ResourceId::of_encoding(b"y")])).is_err());
        // Unrestricted dimensions accept any first restriction.
        assert!(p.check_narrows(&Caveat::ExpiresAt(u64::MAX)).is_ok());
        assert!(p.check_narrows(&Caveat::Rights(Right::ALL.to_vec())).is_ok());
    }
}
