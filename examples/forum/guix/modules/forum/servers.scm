;; The forum servers behind the load balancer.  This module is on the load
;; path (guix.loadPath: ["../guix/modules"] in the deployment), so lb.scm can
;; use it; cuedeploy passes it as -L on the deployer and copies it to the
;; host for `guix system reconfigure`.
(define-module (forum servers)
  #:export (%forum-servers
            %forum-domain))

(define %forum-domain "forum.example.org")

;; host:port of every forum server, as nginx's upstream block takes them.
(define %forum-servers
  '("10.0.1.11:80"
    "10.0.1.12:80"
    "10.0.1.13:80"
    "10.0.1.14:80"))
