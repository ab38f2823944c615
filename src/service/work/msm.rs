//! `Msm` jobs and the resident base sets `UploadBases` keeps.
//!
//! Points travel in arkworks' compressed serialization (32 bytes in G1, 64
//! in G2), scalars as 32 bytes little-endian below the group order. At
//! submit only sizes and scalars are checked (cheap); the points are
//! decompressed and checked (on the curve, in the subgroup) when the job
//! runs, or once when a base set is uploaded.

use std::path::PathBuf;
use std::sync::Arc;

use ark_bn254::{Fr, G1Affine, G2Affine};
use ark_ec::CurveGroup;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};

use super::resident::{self, Resident as Kept};
use super::{BadPayload, Engines, WorkError};
use crate::content_id::{hex_decode_32, hex_encode};
use crate::msm::{ResidentG1, ResidentG2};
use crate::service::proto::msm_job::Bases;
use crate::service::proto::{Group, MsmJob, MsmResult};
use crate::ResolvedBackend;

/// A base set's content id: `bases:` and the BLAKE3 of its group and points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BaseSetId([u8; 32]);

impl BaseSetId {
    const PREFIX: &'static str = "bases:";

    fn of(group: Group, points: &[Vec<u8>]) -> BaseSetId {
        let mut hasher = blake3::Hasher::new_derive_key("causality-vm service base set v1");
        hasher.update(&[group as u8]);
        for p in points {
            hasher.update(p);
        }
        BaseSetId(*hasher.finalize().as_bytes())
    }

    pub fn parse(text: &str) -> Option<BaseSetId> {
        text.strip_prefix(Self::PREFIX).and_then(|hex| hex_decode_32(hex).ok()).map(BaseSetId)
    }
}

impl std::fmt::Display for BaseSetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex_encode(&self.0))
    }
}

enum Resident {
    G1(ResidentG1),
    G2(ResidentG2),
}

impl Resident {
    fn host_bytes(&self) -> usize {
        match self {
            Resident::G1(set) => set.host_bytes(),
            Resident::G2(set) => set.host_bytes(),
        }
    }
}

/// Uploaded base sets: kept in `<data dir>/bases/` so queued jobs naming
/// them survive a restart, and resident in memory (G1 sets on the GPU too)
/// within [`resident::BASE_SET_BYTES`], the least recently used leaving
/// first (loaded again when a job names them).
pub struct BaseSets {
    dir: PathBuf,
    resident: Kept<BaseSetId, Resident>,
}

impl BaseSets {
    pub fn new(dir: PathBuf) -> BaseSets {
        BaseSets { dir, resident: Kept::new(resident::BASE_SET_BYTES) }
    }

    fn keep(&self, id: BaseSetId, set: Resident) -> Arc<Resident> {
        let bytes = set.host_bytes();
        let set = Arc::new(set);
        self.resident.insert(id, Arc::clone(&set), bytes);
        set
    }

    fn file(&self, id: &BaseSetId) -> PathBuf {
        self.dir.join(format!("{}.bases", hex_encode(&id.0)))
    }

    /// Check, keep and persist a base set; returns its id and size.
    pub fn upload(&self, group: Group, points: &[Vec<u8>], engines: &Engines) -> Result<(BaseSetId, usize), WorkError> {
        check_point_sizes(group, "group", points, "bases.points")?;
        let id = BaseSetId::of(group, points);
        if self.lookup(&id).is_some() {
            return Ok((id, points.len()));
        }
        let resident = make_resident(group, points, engines, "bases.points")?;
        let file = encode_set(group, points);
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| crate::fsutil::write_atomically(&self.file(&id), &file, 0o600))
            .map_err(|e| WorkError::Internal(format!("keeping base set {id} in {}: {e}", self.dir.display())))?;
        self.keep(id, resident);
        Ok((id, points.len()))
    }

    /// Drop a set from memory (and the GPU, once no running job holds it)
    /// and from disk; false when it was neither.
    pub fn remove(&self, id: &BaseSetId) -> Result<bool, WorkError> {
        let resident = self.resident.remove(id);
        match std::fs::remove_file(self.file(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(resident),
            Err(e) => Err(WorkError::Internal(format!("removing base set {id}: {e}"))),
        }
    }

    /// A known set's group and size: from memory, or from its file's first
    /// byte and length (not decoded); None when neither can say.
    fn shape(&self, id: &BaseSetId) -> Option<(Group, usize)> {
        if let Some(set) = self.lookup(id) {
            return Some(match &*set {
                Resident::G1(set) => (Group::G1, set.len()),
                Resident::G2(set) => (Group::G2, set.len()),
            });
        }
        let mut file = std::fs::File::open(self.file(id)).ok()?;
        let len = file.metadata().ok()?.len() as usize;
        let mut first = [0u8];
        std::io::Read::read_exact(&mut file, &mut first).ok()?;
        let group = Group::try_from(i32::from(first[0])).ok()?;
        Some((group, (len - 1) / point_size(group)?))
    }

    fn lookup(&self, id: &BaseSetId) -> Option<Arc<Resident>> {
        self.resident.get(id)
    }

    /// Whether the set is resident or kept on disk.
    pub fn knows(&self, id: &BaseSetId) -> bool {
        self.lookup(id).is_some() || self.file(id).is_file()
    }

    /// The resident set, loaded from disk again after a restart.
    fn get(&self, id: &BaseSetId, engines: &Engines) -> Result<Arc<Resident>, WorkError> {
        self.resident.get_or_load(*id, || {
            let path = self.file(id);
            let bytes = std::fs::read(&path).map_err(|e| {
                WorkError::Precondition(format!("base set {id} is not on this server ({e}); upload it again"))
            })?;
            let damaged = || WorkError::Internal(format!("base set file {} is damaged", path.display()));
            let (group, points) = decode_set(&bytes).ok_or_else(damaged)?;
            if BaseSetId::of(group, &points) != *id {
                return Err(damaged());
            }
            let set = make_resident(group, &points, engines, "bases.points")?;
            let bytes = set.host_bytes();
            Ok((set, bytes))
        })
    }
}

/// A base set as it is kept (in the data dir, and in a cluster's blobs):
/// its group's byte, then its points end to end.
pub fn encode_set(group: Group, points: &[Vec<u8>]) -> Vec<u8> {
    let mut file = Vec::with_capacity(1 + points.iter().map(Vec::len).sum::<usize>());
    file.push(group as u8);
    points.iter().for_each(|p| file.extend_from_slice(p));
    file
}

/// [`encode_set`]'s group and points; None when the bytes are not one.
pub fn decode_set(bytes: &[u8]) -> Option<(Group, Vec<Vec<u8>>)> {
    let (group, points) = bytes.split_first()?;
    let group = Group::try_from(i32::from(*group)).ok()?;
    let size = point_size(group)?;
    (points.len() % size == 0).then(|| (group, points.chunks(size).map(<[u8]>::to_vec).collect()))
}

fn point_size(group: Group) -> Option<usize> {
    match group {
        Group::G1 => Some(32),
        Group::G2 => Some(64),
        Group::Unspecified => None,
    }
}

/// `group_field` names the request's group field, `field` its points.
fn check_point_sizes(group: Group, group_field: &str, points: &[Vec<u8>], field: &str) -> Result<usize, BadPayload> {
    let size = point_size(group).ok_or_else(|| BadPayload::new(group_field, "unspecified: GROUP_G1 or GROUP_G2"))?;
    for (i, p) in points.iter().enumerate() {
        if p.len() != size {
            return Err(BadPayload::new(
                format!("{field}[{i}]"),
                format!("{} bytes; a compressed {group:?} point is {size}", p.len()),
            ));
        }
    }
    Ok(size)
}

fn decode_points<P: CanonicalDeserialize + Send>(points: &[Vec<u8>], field: &str) -> Result<Vec<P>, BadPayload> {
    use rayon::prelude::*;
    points
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            P::deserialize_compressed(p.as_slice())
                .map_err(|e| BadPayload::new(format!("{field}[{i}]"), format!("not a valid BN254 point: {e}")))
        })
        .collect()
}

/// A base set uploaded or read back (its group is UploadBases' `group`).
fn make_resident(group: Group, points: &[Vec<u8>], engines: &Engines, field: &str) -> Result<Resident, WorkError> {
    let invalid = |e: crate::msm::MsmError| WorkError::Bad(BadPayload::new(field, e.to_string()));
    Ok(match group {
        Group::G1 => Resident::G1(engines.msm.upload_g1(decode_points::<G1Affine>(points, field)?).map_err(invalid)?),
        Group::G2 => Resident::G2(engines.msm.upload_g2(decode_points::<G2Affine>(points, field)?).map_err(invalid)?),
        Group::Unspecified => return Err(BadPayload::new("group", "unspecified: GROUP_G1 or GROUP_G2").into()),
    })
}

/// A checked MSM job.
pub(super) struct Work<'a> {
    group: Group,
    bases: WorkBases<'a>,
    scalars: Vec<Fr>,
}

enum WorkBases<'a> {
    Inline(&'a [Vec<u8>]),
    Set(BaseSetId),
}

/// A request's group, refusing a value the proto does not name.
pub fn group_of(value: i32, field: &str) -> Result<Group, BadPayload> {
    Group::try_from(value).map_err(|_| BadPayload::new(field, format!("{value} is no group: GROUP_G1 or GROUP_G2")))
}

pub(super) fn parse<'a>(job: &'a MsmJob, sets: &BaseSets) -> Result<Work<'a>, BadPayload> {
    let group = group_of(job.group, "msm.group")?;
    let scalars = job
        .scalars
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.len() != 32 {
                return Err(BadPayload::new(format!("msm.scalars[{i}]"), format!("{} bytes; a scalar is 32", s.len())));
            }
            Fr::deserialize_compressed(s.as_slice()).map_err(|_| {
                BadPayload::new(format!("msm.scalars[{i}]"), "not below the BN254 group order (32 bytes little-endian)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bases = match &job.bases {
        None => return Err(BadPayload::new("msm.bases", "missing: inline_bases or base_set_id")),
        Some(Bases::InlineBases(list)) => {
            check_point_sizes(group, "msm.group", &list.points, "msm.inline_bases.points")?;
            if list.points.len() != scalars.len() {
                return Err(BadPayload::new(
                    "msm.scalars",
                    format!("{} scalars for {} bases; they must match", scalars.len(), list.points.len()),
                ));
            }
            WorkBases::Inline(&list.points)
        }
        Some(Bases::BaseSetId(text)) => {
            let id = BaseSetId::parse(text).ok_or_else(|| {
                BadPayload::new("msm.base_set_id", format!("{text:?} is not a base set id (bases:<64 hex>)"))
            })?;
            if !sets.knows(&id) {
                return Err(BadPayload::new(
                    "msm.base_set_id",
                    format!("{id} is not on this server (never uploaded, or removed)"),
                ));
            }
            // Checked now, as inline bases are, rather than failing the job when it runs.
            if let Some((set_group, len)) = sets.shape(&id) {
                if group != Group::Unspecified && group != set_group {
                    return Err(BadPayload::new("msm.group", format!("base set {id} is in the other group")));
                }
                check_count(len, scalars.len())?;
            }
            WorkBases::Set(id)
        }
    };
    if group == Group::Unspecified {
        return Err(BadPayload::new("msm.group", "unspecified: GROUP_G1 or GROUP_G2"));
    }
    Ok(Work { group, bases, scalars })
}

/// A job accepted while its base set was here, run after `RemoveBases`:
/// `FAILED_PRECONDITION` (uploading the set again mends it), not the
/// `INVALID_ARGUMENT` a submit naming an unknown set gets.
pub(super) fn check_still_held(job: &MsmJob, sets: &BaseSets) -> Result<(), WorkError> {
    match &job.bases {
        Some(Bases::BaseSetId(text)) => match BaseSetId::parse(text) {
            Some(id) if !sets.knows(&id) => Err(WorkError::Precondition(format!(
                "msm.base_set_id: {id} was removed from this server after the job was accepted; upload it again"
            ))),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// An MSM job. It takes no hold of the server's device: the engine places
/// each MSM where it should finish first (under `auto`, counting the
/// device's queue; a busy device sends it to the CPU) and serializes its own
/// device work per group.
pub(super) fn run(work: Work<'_>, engines: &Engines) -> Result<(MsmResult, ResolvedBackend), WorkError> {
    let failed = |e: crate::msm::MsmError| WorkError::Bad(BadPayload::new("msm", e.to_string()));
    let (point, placement) = match work.bases {
        WorkBases::Inline(points) => match work.group {
            Group::G1 => {
                let bases = decode_points::<G1Affine>(points, "msm.inline_bases.points")?;
                let (sum, placement) = engines.msm.msm_g1_placed(&bases, &work.scalars).map_err(failed)?;
                (compress(&sum.into_affine()), placement)
            }
            _ => {
                let bases = decode_points::<G2Affine>(points, "msm.inline_bases.points")?;
                let (sum, placement) = engines.msm.msm_g2_placed(&bases, &work.scalars).map_err(failed)?;
                (compress(&sum.into_affine()), placement)
            }
        },
        WorkBases::Set(id) => {
            let set = engines.bases.get(&id, engines)?;
            match (&*set, work.group) {
                (Resident::G1(set), Group::G1) => {
                    check_count(set.len(), work.scalars.len())?;
                    let (sum, placement) = engines.msm.msm_g1_resident_placed(set, &work.scalars).map_err(failed)?;
                    (compress(&sum.into_affine()), placement)
                }
                (Resident::G2(set), Group::G2) => {
                    check_count(set.len(), work.scalars.len())?;
                    let (sum, placement) = engines.msm.msm_g2_resident_placed(set, &work.scalars).map_err(failed)?;
                    (compress(&sum.into_affine()), placement)
                }
                _ => return Err(BadPayload::new("msm.group", format!("base set {id} is in the other group")).into()),
            }
        }
    };
    let ran = if placement.on_device() { ResolvedBackend::Gpu } else { ResolvedBackend::Cpu };
    Ok((MsmResult { point }, ran))
}

fn check_count(bases: usize, scalars: usize) -> Result<(), BadPayload> {
    if scalars != bases {
        return Err(BadPayload::new(
            "msm.scalars",
            format!("{scalars} scalars for a base set of {bases}; they must match"),
        ));
    }
    Ok(())
}

fn compress(point: &impl CanonicalSerialize) -> Vec<u8> {
    let mut out = Vec::with_capacity(point.compressed_size());
    point.serialize_compressed(&mut out).expect("a Vec grows");
    out
}
