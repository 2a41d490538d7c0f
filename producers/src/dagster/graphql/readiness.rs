//! One readiness out of several: the role is ready while every part is.

use tokio::sync::watch;

/// Senders for `N` parts; `outer` is true while all of them are. The joining task ends when
/// every part's sender is dropped (it then leaves `outer` false).
pub fn join<const N: usize>(outer: watch::Sender<bool>) -> [watch::Sender<bool>; N] {
    let parts: [(watch::Sender<bool>, watch::Receiver<bool>); N] =
        std::array::from_fn(|_| watch::channel(false));
    let mut receivers: Vec<watch::Receiver<bool>> =
        parts.iter().map(|(_, receiver)| receiver.clone()).collect();
    let senders = parts.map(|(sender, _)| sender);
    tokio::spawn(async move {
        loop {
            outer.send_replace(receivers.iter().all(|r| *r.borrow()));
            let changes = receivers.iter_mut().map(|r| Box::pin(r.changed()));
            let (changed, _, _) = futures::future::select_all(changes).await;
            if changed.is_err() {
                // A part ended: wait for the others, reporting not ready meanwhile.
                outer.send_replace(false);
                for receiver in &mut receivers {
                    while receiver.changed().await.is_ok() {}
                }
                return;
            }
        }
    });
    senders
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn ready_only_while_every_part_is() {
        let (outer, mut seen) = watch::channel(false);
        let [a, b] = join::<2>(outer);
        a.send_replace(true);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!*seen.borrow_and_update());
        b.send_replace(true);
        tokio::time::timeout(Duration::from_secs(1), seen.wait_for(|r| *r))
            .await
            .unwrap()
            .unwrap();
        b.send_replace(false);
        tokio::time::timeout(Duration::from_secs(1), seen.wait_for(|r| !*r))
            .await
            .unwrap()
            .unwrap();
    }
}
