//! A scripted NTP server on 127.0.0.1 for the unit tests: it answers
//! each request with whatever the test's closure says, crafted replies
//! included.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::duration::SignedDuration;
use crate::packet::Packet;
pub(crate) use crate::testing::good_reply;

pub(crate) enum Action {
    /// Sent from the server's own address.
    Reply(Vec<u8>),
    /// Sent from another socket (another port) of the same host.
    ReplyFromElsewhere(Vec<u8>),
    Wait(Duration),
}

pub(crate) struct FakeServer {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// `answer(n, request)`: what to do with the n-th request (from 1).
    pub async fn start<F>(mut answer: F) -> Self
    where
        F: FnMut(usize, &Packet) -> Vec<Action> + Send + 'static,
    {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let (len, client) = socket.recv_from(&mut buf).await.unwrap();
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                let request = Packet::decode(&buf[..len]).expect("a request of 48 bytes or more");
                for action in answer(n, &request) {
                    match action {
                        Action::Reply(bytes) => {
                            socket.send_to(&bytes, client).await.unwrap();
                        }
                        Action::ReplyFromElsewhere(bytes) => {
                            other.send_to(&bytes, client).await.unwrap();
                        }
                        Action::Wait(d) => tokio::time::sleep(d).await,
                    }
                }
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// A server that answers every request well, its clock `offset`
    /// ahead of this one.
    pub async fn good(offset: SignedDuration) -> Self {
        Self::start(move |_, request| {
            vec![Action::Reply(good_reply(request, offset).encode().to_vec())]
        })
        .await
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
