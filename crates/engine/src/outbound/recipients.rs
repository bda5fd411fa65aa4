//! Recipients of a letter: addresses given by RPPS are resolved through the Annuaire national
//! MSSanté, and every address must be in the espace de confiance (liste blanche).

use relais_annuaire::{Decision, Refreshing};
use relais_compose::Intake;
use relais_store::{ErrorInfo, NewRecipient, ResolvedBy};

use super::Outbound;

/// Stable codes of the recipient checks.
pub mod codes {
    /// A recipient's RPPS has no MSSanté mailbox in the Annuaire.
    pub const RPPS_UNKNOWN: &str = "OUTBOUND-RPPS-UNKNOWN";
    /// A recipient is given by RPPS only and no Annuaire is configured.
    pub const NO_ANNUAIRE: &str = "OUTBOUND-NO-ANNUAIRE";
    /// A recipient's domain is not on the liste blanche.
    pub const NOT_ALLOWED: &str = "OUTBOUND-RECIPIENT-NOT-ALLOWED";
}

/// Why the recipients of a letter cannot be used.
#[derive(Debug)]
pub(crate) enum RecipientProblem {
    /// For good: the letter is refused.
    Refused(ErrorInfo),
    /// The Annuaire cannot be asked now (directory down): try the drop again later.
    Later(String),
}

/// The recipients as the intake gives them (nothing resolved).
pub(crate) fn as_given(intake: &Intake) -> Vec<NewRecipient> {
    intake
        .recipients
        .iter()
        .map(|r| NewRecipient {
            address: r.mssante.clone(),
            rpps: r.rpps.clone(),
            resolved_by: if r.mssante.is_some() {
                ResolvedBy::Intake
            } else {
                ResolvedBy::Unresolved
            },
        })
        .collect()
}

/// Checks an address against the liste blanche: `Err` with the refusal said without the
/// local part (a patient address holds the INS).
pub(crate) fn check_allowed(
    list: &Refreshing,
    index: usize,
    address: &str,
) -> Result<(), ErrorInfo> {
    match list.allows(address) {
        Decision::Allowed { .. } => Ok(()),
        refused => Err(ErrorInfo {
            code: codes::NOT_ALLOWED.into(),
            text: format!(
                "recipients[{index}]: {refused}; the letter was not sent (check the address, or \
                 the liste blanche file if the domain joined the espace de confiance)"
            ),
        }),
    }
}

impl Outbound {
    /// Resolves every recipient given by RPPS only (the first personal mailbox the Annuaire
    /// has), writing the address into the intake, then checks every address against the
    /// liste blanche. Returns the recipients as journaled.
    pub(crate) async fn resolve_recipients(
        &self,
        intake: &mut Intake,
    ) -> Result<Vec<NewRecipient>, (RecipientProblem, Vec<NewRecipient>)> {
        let mut out = as_given(intake);
        for (i, r) in intake.recipients.iter_mut().enumerate() {
            if r.mssante.is_some() {
                continue;
            }
            let Some(rpps) = r.rpps.clone() else {
                continue; // the intake validation names it
            };
            let Some(dir) = &self.directory else {
                return Err((
                    RecipientProblem::Refused(ErrorInfo {
                        code: codes::NO_ANNUAIRE.into(),
                        text: format!(
                            "recipients[{i}] is given by RPPS only and no Annuaire is configured \
                             ([outbound.annuaire]); give its MSSanté address"
                        ),
                    }),
                    out,
                ));
            };
            match dir.mailboxes_for_rpps(&rpps).await {
                Ok(boxes) => match boxes.into_iter().next() {
                    Some(mailbox) => {
                        out[i].address = Some(mailbox.address.clone());
                        out[i].resolved_by = ResolvedBy::Annuaire;
                        r.mssante = Some(mailbox.address);
                    }
                    None => {
                        return Err((
                            RecipientProblem::Refused(ErrorInfo {
                                code: codes::RPPS_UNKNOWN.into(),
                                text: format!(
                                    "recipients[{i}]: the Annuaire ({}) has no MSSanté mailbox for \
                                     this RPPS; check the number or give the address",
                                    dir.describe()
                                ),
                            }),
                            out,
                        ));
                    }
                },
                Err(e) => {
                    return Err((
                        RecipientProblem::Later(format!(
                            "the Annuaire ({}) cannot be asked now: {e}",
                            dir.describe()
                        )),
                        out,
                    ));
                }
            }
        }
        if let Some(list) = &self.liste_blanche {
            for (i, r) in out.iter().enumerate() {
                if let Some(address) = &r.address
                    && let Err(e) = check_allowed(list, i, address)
                {
                    return Err((RecipientProblem::Refused(e), out));
                }
            }
        }
        Ok(out)
    }
}
