;; The contract suite's system whose activation fails.  The symbol
;; standin-fail-activation is a marker for the guix STAND-IN (not GNU
;; Guix): it makes the built system's activate script exit 1.  Real Guix
;; would reject this file as an unbound variable.
(use-modules (gnu) (forum test-base))

(operating-system
  (host-name "contract-failing")
  (timezone "Etc/UTC")
  (bootloader (bootloader-configuration
                (bootloader grub-bootloader)
                (targets '("/dev/vda"))))
  (file-systems (cons (file-system
                        (mount-point "/")
                        (device (file-system-label "root"))
                        (type "ext4"))
                      %base-file-systems))
  (services (cons (standin-fail-activation) %base-services)))
