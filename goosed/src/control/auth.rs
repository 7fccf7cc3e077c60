//! Who may do what over the control socket (design.md §6): anyone who can
//! connect may ask, only root or the daemon's own user may change anything.

use goose_common::control::Request;

/// The credentials the kernel reports for the other end of a connection
/// (`SO_PEERCRED`): they are those of the process at `connect` time and
/// cannot be forged by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The client's effective user id.
    pub uid: u32,
    /// The client's effective group id.
    pub gid: u32,
    /// The client's process id, when the kernel reports it.
    pub pid: Option<i32>,
}

/// The superuser's id.
const ROOT_UID: u32 = 0;

/// Decides whether a client may send `request`. Questions are open to
/// anyone who can connect (the socket's mode already limits that to the
/// daemon's user and group); mutating requests need root or the daemon's own
/// effective user. Unknown credentials are treated as an unprivileged user.
///
/// The error is the one line the client is shown.
pub fn authorize(request: &Request, peer_uid: Option<u32>, daemon_uid: u32) -> Result<(), String> {
    if !request.is_mutating() {
        return Ok(());
    }
    match peer_uid {
        Some(uid) if uid == ROOT_UID || uid == daemon_uid => Ok(()),
        Some(uid) => Err(format!(
            "permission denied: '{}' needs root or the daemon's user (uid {daemon_uid}); you are uid {uid}",
            request.command_name()
        )),
        None => Err(format!(
            "permission denied: '{}' needs root or the daemon's user, and the caller's credentials are unknown",
            request.command_name()
        )),
    }
}

#[cfg(test)]
mod tests {
    //! Checks the permission rule of design.md §6 with injected user ids.

    use super::*;
    use goose_common::NodeId;

    const DAEMON_UID: u32 = 998;
    const OTHER_UID: u32 = 1000;

    #[test]
    fn questions_are_open_to_every_caller() {
        for request in [
            Request::Status { local: true },
            Request::Status { local: false },
            Request::IsGoose,
            Request::Watch,
            Request::MemberList,
            Request::PartitionList,
        ] {
            for uid in [None, Some(ROOT_UID), Some(DAEMON_UID), Some(OTHER_UID)] {
                assert_eq!(
                    authorize(&request, uid, DAEMON_UID),
                    Ok(()),
                    "{request:?} {uid:?}"
                );
            }
        }
    }

    #[test]
    fn changes_need_root_or_the_daemon_user() {
        let request = Request::MemberRemove { id: NodeId(2) };
        assert_eq!(authorize(&request, Some(ROOT_UID), DAEMON_UID), Ok(()));
        assert_eq!(authorize(&request, Some(DAEMON_UID), DAEMON_UID), Ok(()));
        let refused = authorize(&request, Some(OTHER_UID), DAEMON_UID).unwrap_err();
        assert!(
            refused.starts_with("permission denied: 'member remove'"),
            "{refused}"
        );
        assert!(refused.contains("uid 1000"), "{refused}");
        let unknown = authorize(&request, None, DAEMON_UID).unwrap_err();
        assert!(unknown.starts_with("permission denied"), "{unknown}");
    }

    #[test]
    fn a_daemon_running_as_root_accepts_changes_only_from_root() {
        let request = Request::PartitionHeal;
        assert_eq!(authorize(&request, Some(ROOT_UID), ROOT_UID), Ok(()));
        assert!(authorize(&request, Some(OTHER_UID), ROOT_UID).is_err());
        assert!(authorize(&request, Some(65534), ROOT_UID).is_err());
    }
}
