;; The Guix revision the forum's load balancer is built with, as
;; `guix describe -f channels` writes it.  cuedeploy runs every guix command
;; that evaluates lb.scm under `guix time-machine -C channels.scm --`, on the
;; deployer and on the host, so both evaluate it with this same Guix.
;; Refresh it with: guix pull && guix describe -f channels > channels.scm
(list (channel
        (name 'guix)
        (url "https://git.savannah.gnu.org/git/guix.git")
        (branch "master")
        (commit
          "419e359a5e98f546661fc58e3a682378dcc60bca")
        (introduction
          (make-channel-introduction
            "9edb3f66fd807b096b48283debdcddccfea34bad"
            (openpgp-fingerprint
              "BBB0 2DDF 2CEA F6A8 0D1D  E643 A2A0 6DF2 A33A 54FA")))))
