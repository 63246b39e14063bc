;; Test module on the load path of the contract suite's systems; its content
;; is part of what the systems' derivations depend on.
(define-module (forum test-base)
  #:export (%test-motd))

(define %test-motd "cuedeploy contract suite")
