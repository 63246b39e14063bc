;; Part of the guix stand-in for cuedeploy tests (not GNU Guix).
;; Reads every form of each file given on the command line, so that a syntax
;; error is Guile's own error.  With --read-only first, stops there.
;; Otherwise the first file is an operating-system declaration: print its
;; host-name and whether the stand-in's markers standin-fail-activation and
;; standin-slow-activation appear in it.
(define (read-all file)
  (call-with-input-file file
    (lambda (port)
      (let loop ((forms '()))
        (let ((x (read port)))
          (if (eof-object? x)
              (reverse forms)
              (loop (cons x forms))))))))

(define (find-os x)
  (cond ((and (pair? x) (eq? (car x) 'operating-system)) x)
        ((pair? x) (or (find-os (car x)) (find-os (cdr x))))
        (else #f)))

(define (mentions? x sym)
  (cond ((eq? x sym) #t)
        ((pair? x) (or (mentions? (car x) sym) (mentions? (cdr x) sym)))
        (else #f)))

(define (field os name)
  (let loop ((fields (cdr os)))
    (cond ((not (pair? fields)) #f)
          ((and (pair? (car fields))
                (eq? (caar fields) name)
                (pair? (cdar fields)))
           (cadar fields))
          (else (loop (cdr fields))))))

(let ((args (cdr (command-line))))
  (if (and (pair? args) (string=? (car args) "--read-only"))
      (for-each read-all (cdr args))
      (let* ((forms (read-all (car args)))
             (os (find-os forms)))
        (for-each read-all (cdr args))
        (unless os
          (format (current-error-port) "~a: no operating-system declaration~%"
                  (car args))
          (exit 1))
        (let ((name (field os 'host-name)))
          (unless (string? name)
            (format (current-error-port) "~a: host-name is not a string~%"
                    (car args))
            (exit 1))
          (format #t "host-name ~a~%" name)
          (format #t "fail-activation ~a~%"
                  (if (mentions? forms 'standin-fail-activation) "yes" "no"))
          (format #t "slow-activation ~a~%"
                  (if (mentions? forms 'standin-slow-activation) "yes" "no"))))))
