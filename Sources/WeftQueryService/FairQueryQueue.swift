/// Decides which query runs next, fairly between orgs. At most `maxRunning` queries run at once, at
/// most `maxRunningPerOrg` of them for one org, and at most `maxQueuedPerOrg` of an org wait; beyond
/// that a query is refused. A freed slot goes to the orgs with waiting queries in turn (round robin),
/// each org's own queries in arrival order, so an org with hundreds waiting delays another org's query
/// by at most one query per org ahead of it, not by its whole backlog.
///
/// Pure state: the caller runs what it is told to start and reports each end with ``finished(org:)``.
package struct FairQueryQueue<Job> {
    package enum Admission {
        /// Run it now.
        case start(Job)
        /// It waits; a later ``FairQueryQueue/finished(org:)`` hands it out.
        case queued
        /// The org already has `maxQueuedPerOrg` queries waiting.
        case rejected
    }

    package let maxRunning: Int
    package let maxRunningPerOrg: Int
    package let maxQueuedPerOrg: Int

    private(set) var running = 0
    private var runningByOrg: [String: Int] = [:]
    private var waiting: [String: FIFO<Job>] = [:]
    /// Orgs with waiting queries, in the order they are served.
    private var turns = FIFO<String>()

    package init(maxRunning: Int, maxRunningPerOrg: Int, maxQueuedPerOrg: Int) {
        self.maxRunning = max(1, maxRunning)
        self.maxRunningPerOrg = max(1, maxRunningPerOrg)
        self.maxQueuedPerOrg = max(0, maxQueuedPerOrg)
    }

    /// Queries of `org` running now.
    package func runningCount(of org: String) -> Int { self.runningByOrg[org] ?? 0 }

    /// Queries of `org` waiting now.
    package func waitingCount(of org: String) -> Int { self.waiting[org]?.count ?? 0 }

    /// A new query of `org`. It starts at once when a slot is free and the org is under its share (a
    /// free slot means no other org is waiting for it).
    package mutating func submit(_ job: Job, org: String) -> Admission {
        if self.running < self.maxRunning && self.runningCount(of: org) < self.maxRunningPerOrg {
            self.begin(org)
            return .start(job)
        }
        guard self.waitingCount(of: org) < self.maxQueuedPerOrg else { return .rejected }
        if self.waiting[org] == nil {
            self.waiting[org] = FIFO()
            self.turns.append(org)
        }
        self.waiting[org]!.append(job)
        return .queued
    }

    /// A query of `org` ended; returns the queries to start now (their orgs were told in turn).
    package mutating func finished(org: String) -> [(org: String, job: Job)] {
        precondition(self.runningCount(of: org) > 0, "finished(org:) without a running query of \(org)")
        self.running -= 1
        let left = self.runningCount(of: org) - 1
        self.runningByOrg[org] = left == 0 ? nil : left
        var started: [(org: String, job: Job)] = []
        while self.running < self.maxRunning, let next = self.nextTurn() {
            started.append(next)
        }
        return started
    }

    /// Takes the first query of the first org in turn that is under its share; that org goes to the
    /// back of the turns if it has more waiting. Orgs at their share keep their place.
    private mutating func nextTurn() -> (org: String, job: Job)? {
        var skipped = FIFO<String>()
        defer {
            // Orgs passed over stay ahead of the one just served.
            while let org = self.turns.popFirst() { skipped.append(org) }
            self.turns = skipped
        }
        while let org = self.turns.popFirst() {
            guard self.runningCount(of: org) < self.maxRunningPerOrg else {
                skipped.append(org)
                continue
            }
            let job = self.waiting[org]!.popFirst()!
            if self.waiting[org]!.count == 0 {
                self.waiting[org] = nil
            } else {
                self.turns.append(org)
            }
            self.begin(org)
            return (org, job)
        }
        return nil
    }

    private mutating func begin(_ org: String) {
        self.running += 1
        self.runningByOrg[org, default: 0] += 1
    }
}

/// A first-in, first-out queue: appends at the back, takes from the front, both O(1) amortised.
package struct FIFO<Element> {
    private var items: [Element?] = []
    private var head = 0

    package var count: Int { self.items.count - self.head }

    package mutating func append(_ item: Element) { self.items.append(item) }

    package mutating func popFirst() -> Element? {
        guard self.head < self.items.count else { return nil }
        let item = self.items[self.head]
        self.items[self.head] = nil
        self.head += 1
        if self.head >= 32 && self.head * 2 >= self.items.count {
            self.items.removeFirst(self.head)
            self.head = 0
        }
        return item
    }
}
